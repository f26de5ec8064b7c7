package protocols

import (
	"testing"
	"time"

	"github.com/heraldrt/herald/fanout"
)

func TestSessionCloseTokenExpiredSSE(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	s, cl, _ := h.openSSE(sseOpts("u", "ch"))
	m := h.publish("ch", payload("ch", 1))
	s.Enqueue(m)
	s.Close(CloseTokenExpired)
	s.Close(CloseShutdown) // a second close changes nothing
	cl.expectMessage(m)    // what was queued is written first
	ev, raw := cl.expectEvent("disconnect")
	if ev["reason"] != "token_expired" || ev["reconnect"] != true {
		t.Fatalf("disconnect = %s", raw.Data)
	}
	checkCursor(t, raw.ID, "ch", m.Pos)
	cl.expectEOF()
	waitDone(t, s)
	if s.CloseReason() != CloseTokenExpired {
		t.Fatalf("CloseReason = %+v", s.CloseReason())
	}
	s.Enqueue(h.publish("ch", "1")) // after the end: ignored, no panic
	s.SendEvent([]byte(`{"type":"x"}`))
}

func TestSessionExpiresAt(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   time.Duration
	}{{"past", -time.Hour}, {"soon", 300 * time.Millisecond}} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{}, fanout.MemoryConfig{})
			opts := sseOpts("u", "ch")
			opts.ExpiresAt = time.Now().Add(tt.in)
			s, cl, _ := h.openSSE(opts)
			ev, raw := cl.expectEvent("disconnect")
			if ev["reason"] != "token_expired" || ev["reconnect"] != true {
				t.Fatalf("disconnect = %s", raw.Data)
			}
			cl.expectEOF()
			waitDone(t, s)
			if time.Now().Before(opts.ExpiresAt) {
				t.Fatal("closed before the token expired")
			}
		})
	}
}

func TestSessionTokenExpiringThenExpired(t *testing.T) {
	h := newHarness(t, Config{TokenExpiringLead: time.Hour}, fanout.MemoryConfig{})
	opts := sseOpts("u", "ch")
	opts.ExpiresAt = time.Now().Add(500 * time.Millisecond).Truncate(time.Second).Add(time.Second)
	s, cl, _ := h.openSSE(opts)
	ev, raw := cl.expectEvent("token_expiring")
	if ev["expires_at"] != float64(opts.ExpiresAt.Unix()) {
		t.Fatalf("token_expiring = %s, want expires_at %d", raw.Data, opts.ExpiresAt.Unix())
	}
	if ev, raw := cl.expectEvent("disconnect"); ev["reason"] != "token_expired" {
		t.Fatalf("disconnect = %s", raw.Data)
	}
	cl.expectEOF()
	waitDone(t, s)

	// Raw WebSocket clients get no token_expiring (the guide's format has
	// no such message), only the final event.
	opts.ExpiresAt = time.Now().Add(300 * time.Millisecond)
	s, wc := h.openWS(opts, WSRaw)
	if m := eventType(t, string(wc.nextData())); m["type"] != "connection_established" {
		t.Fatalf("first event %v", m)
	}
	if m := eventType(t, string(wc.nextData())); m["type"] != "disconnect" || m["reason"] != "token_expired" {
		t.Fatalf("second event %v", m)
	}
	f := wc.next()
	if code, _ := closePayload(f.payload); f.op != opClose || code != 4401 {
		t.Fatalf("close frame op %#x code %d", f.op, code)
	}
	waitDone(t, s)
}

func TestSessionMaxLifetime(t *testing.T) {
	h := newHarness(t, Config{MaxLifetime: 200 * time.Millisecond}, fanout.MemoryConfig{})
	start := time.Now()
	s, cl, _ := h.openSSE(sseOpts("u", "ch"))
	if ev, raw := cl.expectEvent("disconnect"); ev["reason"] != "max_lifetime" || ev["reconnect"] != true {
		t.Fatalf("disconnect = %s", raw.Data)
	}
	cl.expectEOF()
	waitDone(t, s)
	if d := time.Since(start); d < 180*time.Millisecond {
		t.Fatalf("closed after %v, before the lifetime minus jitter", d)
	}
}

func TestSessionKeepaliveAndIdle(t *testing.T) {
	h := newHarness(t, Config{SSEHeartbeat: 20 * time.Millisecond, WSPingInterval: 20 * time.Millisecond, IdleTimeout: 300 * time.Millisecond}, fanout.MemoryConfig{})
	s, cl, _ := h.openSSE(sseOpts("u", "ch"))
	if ev, raw := cl.expectEvent("disconnect"); ev["reason"] != "idle_timeout" || ev["reconnect"] != false {
		t.Fatalf("disconnect = %s", raw.Data)
	}
	if cl.p.comments == 0 {
		t.Fatal("no SSE heartbeat comment before the idle timeout")
	}
	cl.expectEOF()
	waitDone(t, s)

	opts := sseOpts("u", "ch")
	s, wc := h.openWS(opts, WSEnvelope)
	pings := 0
	for {
		f := wc.next()
		if f.op == opPing {
			pings++
			if len(f.payload) != 0 {
				t.Fatalf("ping payload %q", f.payload)
			}
			continue
		}
		if f.op == opClose {
			if code, reason := closePayload(f.payload); code != 4000 || reason != "idle_timeout" {
				t.Fatalf("close %d %q", code, reason)
			}
			break
		}
	}
	if pings == 0 {
		t.Fatal("no WebSocket ping before the idle timeout")
	}
	waitDone(t, s)
}

func TestSessionCloseBeforeAttach(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	s := h.resumed(sseOpts("u", "ch"))
	s.Close(CloseGoingAway)
	waitDone(t, s)
	if s.Attached() {
		t.Fatal("Attached before Attach")
	}
	server, client := tcpPair(t)
	defer client.Close()
	s.Attach(server) // the client left mid-handshake: the socket is closed at once
	_ = client.SetReadDeadline(time.Now().Add(waitTimeout))
	if n, err := client.Read(make([]byte, 1)); !isClosed(err) {
		t.Fatalf("read %d bytes, %v; want the socket closed", n, err)
	}
}

func TestSessionEnqueueBeforeAttach(t *testing.T) {
	// Messages that arrive between Resume and Attach are written after the
	// resume events.
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	s := h.resumed(sseOpts("u", "ch"))
	ms := h.publishN("ch", 3)
	for _, m := range ms {
		s.Enqueue(m)
	}
	cl := newSSEClient(t, h.attach(s))
	cl.expectEvent("connection_established")
	cl.expectMessages(ms...)
}
