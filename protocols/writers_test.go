package protocols

import (
	"testing"

	"github.com/heraldrt/herald/fanout"
)

func TestWritersClosedStillFlush(t *testing.T) {
	// A session scheduled after the pool stopped (a late timer during
	// shutdown) is flushed on a goroutine of its own.
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	s, cl, _ := h.openSSE(sseOpts("u", "ch"))
	h.env.Writers.Close()
	h.env.Writers.Close() // idempotent
	m := h.publish("ch", payload("ch", 1))
	s.Enqueue(m)
	cl.expectMessage(m)
	s.Close(CloseShutdown)
	if ev, raw := cl.expectEvent("disconnect"); ev["reason"] != "shutdown" {
		t.Fatalf("disconnect = %s", raw.Data)
	}
	waitDone(t, s)
}
