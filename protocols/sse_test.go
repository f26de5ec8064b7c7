package protocols

import (
	"testing"

	"github.com/heraldrt/herald/fanout"
)

func TestServeSSEClientSendsData(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	s, cl, _ := h.openSSE(sseOpts("u", "ch"))
	if _, err := cl.conn.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	cl.expectEOF()
	waitDone(t, s)
	if s.CloseReason() != CloseProtocolError {
		t.Fatalf("CloseReason = %+v", s.CloseReason())
	}
}

func TestServeSSEClientGoesAway(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	s, c := h.open(sseOpts("u", "ch"))
	newSSEClient(t, c).expectEvent("connection_established")
	c.Close()
	waitDone(t, s)
	if r := s.CloseReason(); r.Reason != "" {
		t.Fatalf("CloseReason = %+v for a client that left", r)
	}
}
