package protocols

import (
	"context"
	"encoding/binary"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/fanout"
)

// TestParkedSessionsHoldNoGoroutine parks 500 idle WebSocket and SSE
// sessions (server.netpoll) and checks what the reader goroutine did: the
// goroutine count stays flat while they idle; a parked WebSocket answers
// a ping that arrives in two parts, gets published messages, and echoes a
// client's close; a client that hangs up ends its session (the end
// callback runs once); and a session Herald closes ends too, although a
// socket closed by its owner never wakes the poller.
func TestParkedSessionsHoldNoGoroutine(t *testing.T) {
	h := newHarness(t, Config{WSPingInterval: time.Hour, SSEHeartbeat: time.Hour}, fanout.MemoryConfig{})
	if h.env.Poller == nil {
		h.park(t)
	}
	base := runtime.NumGoroutine()
	const n = 500
	type parked struct {
		s     *Session
		c     *wsClient
		ended *atomic.Int32
	}
	conns := make([]parked, n)
	for i := range conns {
		tr := Transport(WSTransport{Format: WSRaw})
		if i%2 == 1 {
			tr = SSETransport{}
		}
		s := NewSession(h.env, Options{ID: uint64(i + 1), UserID: "u", Channels: []string{"ch"}, Transport: tr})
		if err := s.Resume(context.Background()); err != nil {
			t.Fatal(err)
		}
		server, client := tcpPair(t)
		t.Cleanup(func() { client.Close() })
		s.Attach(server)
		ended := new(atomic.Int32)
		s.Run(server, func() { ended.Add(1) })
		conns[i] = parked{s: s, c: newWSClient(t, client), ended: ended}
	}
	for _, p := range conns[:2] {
		if p.s.tr.Kind() == KindWS {
			if got := string(p.c.nextData()); !strings.Contains(got, "connection_established") {
				t.Fatalf("first frame %q", got)
			}
		}
	}
	time.Sleep(100 * time.Millisecond) // writers and wake-ups settle
	if g := runtime.NumGoroutine(); g > base+20 {
		t.Fatalf("%d goroutines with %d parked sessions (%d before)", g, n, base)
	}

	// A ping in two parts is answered with its payload; a message still
	// reaches the parked session.
	ws := conns[0]
	ping := clientFrame(0x80|opPing, "hi")
	if _, err := ws.c.conn.Write(ping[:3]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := ws.c.conn.Write(ping[3:]); err != nil {
		t.Fatal(err)
	}
	if f := ws.c.next(); f.op != opPong || string(f.payload) != "hi" {
		t.Fatalf("got op %x %q, want pong \"hi\"", f.op, f.payload)
	}
	m := h.publish("ch", `{"type":"n"}`)
	if ws.s.Enqueue(m) == Closed {
		t.Fatal("parked session closed")
	}
	if got := string(ws.c.nextData()); got != `{"type":"n"}` {
		t.Fatalf("message %q", got)
	}

	// A client's close frame is echoed and ends the session.
	ws2 := conns[2]
	if _, err := ws2.c.conn.Write(clientFrame(0x80|opClose, string(binary.BigEndian.AppendUint16(nil, 1000)))); err != nil {
		t.Fatal(err)
	}
	for {
		f := ws2.c.next()
		if f.op == opClose {
			if code := binary.BigEndian.Uint16(f.payload); code != 1000 {
				t.Fatalf("close code %d, want 1000 echoed", code)
			}
			break
		}
	}
	waitDone(t, ws2.s)

	// Herald closes one (an SSE session): it ends without a wake-up.
	conns[1].s.Close(CloseShutdown)
	waitDone(t, conns[1].s)

	for _, p := range conns {
		p.c.conn.Close()
	}
	deadline := time.Now().Add(waitTimeout)
	for i := 0; i < len(conns); {
		if got := conns[i].ended.Load(); got > 1 {
			t.Fatalf("session %d: end callback ran %d times", i, got)
		} else if got == 1 {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %d did not end", i)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if l := h.env.Poller.Len(); l != 0 {
		t.Fatalf("%d connections still registered with the poller", l)
	}
	waitGoroutines(t, base)
}

// TestParkedWSReadTimeout: a parked WebSocket that sends nothing, not even
// a pong, is closed with 1001 after the read timeout, as with a reader
// goroutine's read deadline; one that keeps sending frames is not.
func TestParkedWSReadTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h := newHarness(t, Config{WSReadTimeout: timeout, WSPingInterval: time.Hour}, fanout.MemoryConfig{})
	if h.env.Poller == nil {
		h.park(t)
	}
	open := func() (*Session, *wsClient) {
		s := NewSession(h.env, Options{ID: 1, UserID: "u", Channels: []string{"ch"}, Transport: WSTransport{Format: WSRaw}})
		if err := s.Resume(context.Background()); err != nil {
			t.Fatal(err)
		}
		server, client := tcpPair(t)
		t.Cleanup(func() { client.Close() })
		s.Attach(server)
		s.Run(server, func() {})
		return s, newWSClient(t, client)
	}
	silent, sc := open()
	chatty, cc := open()
	start := time.Now()
	sc.nextData() // connection_established
	cc.nextData()
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(timeout / 4):
				_, _ = cc.conn.Write(clientFrame(0x80|opPong, ""))
			}
		}
	}()
	defer close(stop)
	for {
		f := sc.next()
		if f.op == opClose {
			if code := binary.BigEndian.Uint16(f.payload); code != 1001 {
				t.Fatalf("close code %d, want 1001", code)
			}
			break
		}
	}
	if took := time.Since(start); took < timeout || took > timeout+3*time.Second {
		t.Fatalf("closed after %v, want about %v", took, timeout)
	}
	waitDone(t, silent)
	time.Sleep(2 * timeout)
	if chatty.isClosing() {
		t.Fatalf("a client sending pongs was closed: %+v", chatty.CloseReason())
	}
}
