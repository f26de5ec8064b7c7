package protocols

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/fanout"
)

func TestSessionEstablishedFirstThenMessagesInOrder(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	h.publishN("user:alice", 3) // before the connection: not delivered
	s, c := h.open(sseOpts("alice", "user:alice", "broadcast"))
	cl := newSSEClient(t, c)

	est, ev := cl.expectEvent("connection_established")
	if est["user_id"] != "alice" || est["message"] != "SSE connected successfully" {
		t.Fatalf("established = %s", ev.Data)
	}
	// The established event already carries the starting cursor: the
	// channel top for both channels.
	cur := checkCursor(t, ev.ID, "user:alice", h.top("user:alice"))
	if len(cur) != 2 {
		t.Fatalf("cursor %v should name both channels", cur)
	}

	var want []*fanout.Message
	for i := range 20 {
		ch := "user:alice"
		if i%3 == 0 {
			ch = "broadcast"
		}
		m := h.publish(ch, payload(ch, uint64(i)))
		want = append(want, m)
		s.Enqueue(m)
	}
	last := map[string]fanout.Position{}
	for _, m := range want {
		e := cl.next()
		if e.Data != string(m.Data) {
			t.Fatalf("got %q, want %q", e.Data, m.Data)
		}
		last[m.Channel] = m.Pos
		// The id is the cursor after this message: it holds the latest
		// position of every channel.
		for ch, p := range last {
			checkCursor(t, e.ID, ch, p)
		}
	}
	if got := s.Cursor(); got != cl.p.lastID {
		t.Fatalf("Session.Cursor() = %q, last id %q", got, cl.p.lastID)
	}
}

func TestSessionDuplicatesWrittenOnce(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	s, cl, _ := h.openSSE(sseOpts("u", "ch"))
	ms := h.publishN("ch", 4)
	enqueue(s, ms[0], ms[0], ms[1], ms[0], ms[1], ms[1])
	cl.expectMessages(ms[0], ms[1])
	// A message of a channel the session does not receive is dropped.
	enqueue(s, h.publish("other", `{"type":"x"}`), ms[2], ms[2], ms[3])
	cl.expectMessages(ms[2], ms[3])
}

func TestSessionResumeOverlapWithLive(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	ms := h.publishN("ch", 5)
	opts := sseOpts("u", "ch")
	opts.Since = Cursor{{Hash: ChannelHash("ch"), Pos: ms[1].Pos}}
	// Registered with the hub: live messages arrive before Resume reads
	// history, and history returns them too.
	s := h.resumed(opts, ms[3], ms[4])
	m6 := h.publish("ch", payload("ch", 6))
	s.Enqueue(ms[4]) // late duplicate
	s.Enqueue(m6)
	cl := newSSEClient(t, h.attach(s))
	_, ev := cl.expectEvent("connection_established")
	checkCursor(t, ev.ID, "ch", ms[1].Pos)
	cl.expectMessages(ms[2], ms[3], ms[4], m6)
	m7 := h.publish("ch", payload("ch", 7))
	s.Enqueue(m7)
	cl.expectMessage(m7)
}

func TestSessionGapFilledFromHistory(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	s, cl, _ := h.openSSE(sseOpts("u", "ch"))
	ms := h.publishN("ch", 6)
	enqueue(s, ms[0], ms[1], ms[4]) // 3 and 4 were lost on the way
	cl.expectMessages(ms[0], ms[1], ms[2], ms[3], ms[4])
	s.Enqueue(ms[5])
	cl.expectMessage(ms[5])
}

func TestSessionGapHistoryGone(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{HistorySize: 2})
	s, cl, _ := h.openSSE(sseOpts("u", "ch"))
	ms := h.publishN("ch", 5) // history keeps only 4 and 5
	enqueue(s, ms[0], ms[4])
	cl.expectMessage(ms[0])
	reset, ev := cl.expectEvent("stream_reset")
	if reset["channel"] != "ch" || reset["reason"] != "history_expired" {
		t.Fatalf("stream_reset = %s", ev.Data)
	}
	checkCursor(t, ev.ID, "ch", ms[0].Pos)
	cl.expectMessage(ms[4])
	m6 := h.publish("ch", payload("ch", 6))
	s.Enqueue(m6)
	cl.expectMessage(m6) // one reset, then the stream continues
}

func TestSessionGapAheadOfHistory(t *testing.T) {
	// A message history does not know yet (a lagging replica): one retry,
	// then a stream_reset and delivery, never a retry loop.
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	s, cl, _ := h.openSSE(sseOpts("u", "ch"))
	ms := h.publishN("ch", 2)
	s.Enqueue(ms[0])
	ahead := &fanout.Message{Channel: "ch", Pos: fanout.Position{Epoch: ms[0].Pos.Epoch, Offset: 9}, Data: []byte(`{"n":9}`)}
	s.Enqueue(ahead)
	cl.expectMessages(ms[0], ms[1]) // history filled what it had
	if r, ev := cl.expectEvent("stream_reset"); r["reason"] != "history_expired" {
		t.Fatalf("stream_reset = %s", ev.Data)
	}
	cl.expectMessage(ahead)
}

func TestSessionEpochChange(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	s, cl, _ := h.openSSE(sseOpts("u", "ch"))
	ms := h.publishN("ch", 2)
	enqueue(s, ms[0], ms[1])
	cl.expectMessages(ms...)
	// The channel's history was lost and restarted (a Redis shard restart).
	epoch := ms[0].Pos.Epoch + 1
	n1 := &fanout.Message{Channel: "ch", Pos: fanout.Position{Epoch: epoch, Offset: 1}, Data: []byte(`{"e":1}`)}
	n2 := &fanout.Message{Channel: "ch", Pos: fanout.Position{Epoch: epoch, Offset: 2}, Data: []byte(`{"e":2}`)}
	enqueue(s, n1, n2)
	reset, ev := cl.expectEvent("stream_reset")
	if reset["reason"] != "epoch_changed" || reset["channel"] != "ch" {
		t.Fatalf("stream_reset = %s", ev.Data)
	}
	cl.expectMessages(n1, n2)
	// A duplicate of the new epoch is still dropped.
	s.Enqueue(n2)
	n3 := &fanout.Message{Channel: "ch", Pos: fanout.Position{Epoch: epoch, Offset: 3}, Data: []byte(`{"e":3}`)}
	s.Enqueue(n3)
	cl.expectMessage(n3)
}

func TestSessionResumeFromCursor(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	a := h.publishN("a", 10)
	b := h.publishN("b", 3)
	opts := sseOpts("u", "a", "b", "c")
	// The client saw a up to 6 and b up to 3 (all of it); it never had c.
	// An entry for a channel the connection no longer has is ignored.
	opts.Since = Cursor{
		{Hash: ChannelHash("gone"), Pos: fanout.Position{Epoch: 1, Offset: 1}},
		{Hash: ChannelHash("a"), Pos: a[5].Pos},
		{Hash: ChannelHash("b"), Pos: b[2].Pos},
	}
	h.publishN("c", 2)
	s, cl, ev := h.openSSE(opts)
	checkCursor(t, ev.ID, "a", a[5].Pos)
	checkCursor(t, ev.ID, "c", h.top("c"))
	cl.expectMessages(a[6:]...) // exactly the missed messages
	b4 := h.publish("b", payload("b", 4))
	s.Enqueue(b4)
	cl.expectMessage(b4)
	// The cursor the client holds now resumes a new connection exactly.
	since, err := ParseCursor(cl.p.lastID)
	if err != nil {
		t.Fatal(err)
	}
	a11 := h.publish("a", payload("a", 11))
	opts.Since = since
	opts.ID = 2
	_, cl2, _ := h.openSSE(opts)
	cl2.expectMessage(a11)
}

func TestSessionResumeUnresumableCursor(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{HistorySize: 3})
	ms := h.publishN("ch", 10)
	epoch := ms[0].Pos.Epoch
	for _, tt := range []struct {
		name   string
		since  fanout.Position
		reason string
	}{
		{"other epoch", fanout.Position{Epoch: epoch ^ 0x5a5a, Offset: 9}, "epoch_changed"},
		{"ahead of top", fanout.Position{Epoch: epoch, Offset: 50}, "history_expired"},
		{"trimmed", fanout.Position{Epoch: epoch, Offset: 2}, "history_expired"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := sseOpts("u", "ch")
			opts.Since = Cursor{{Hash: ChannelHash("ch"), Pos: tt.since}}
			s, cl, _ := h.openSSE(opts)
			reset, ev := cl.expectEvent("stream_reset")
			if reset["reason"] != tt.reason || reset["channel"] != "ch" {
				t.Fatalf("stream_reset = %s", ev.Data)
			}
			// The session adopted the channel top: no replay, the next
			// event is the next live message.
			checkCursor(t, ev.ID, "ch", h.top("ch"))
			m := h.publish("ch", payload("ch", 0))
			s.Enqueue(m)
			cl.expectMessage(m)
		})
	}
}

func TestSessionSlowConsumer(t *testing.T) {
	// A long write timeout: the blocked write must end because the client
	// reads, not because it timed out.
	h := newHarness(t, Config{MaxQueue: 4, WriteTimeout: waitTimeout}, fanout.MemoryConfig{})
	slow := h.resumed(Options{ID: 1, UserID: "slow", Channels: []string{"big"}, Transport: SSETransport{}})
	server, client := tcpPair(t)
	defer client.Close()
	// Small socket buffers so a client that does not read blocks the
	// writer after a few messages.
	_ = server.(*net.TCPConn).SetWriteBuffer(16 << 10)
	_ = client.(*net.TCPConn).SetReadBuffer(16 << 10)
	slow.Attach(server)
	go slow.ServeSSE(server)

	fast, fc := h.open(Options{ID: 2, UserID: "fast", Channels: []string{"small"}, Transport: SSETransport{}})
	fastCl := newSSEClient(t, fc)
	fastCl.expectEvent("connection_established")

	big := strings.Repeat("x", 128<<10)
	var sent []*fanout.Message
	deadline := time.Now().Add(waitTimeout)
	for slow.CloseReason().Reason == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no slow_consumer close after %d messages", len(sent))
		}
		m := h.publish("big", `"`+big+`"`)
		sent = append(sent, m)
		slow.Enqueue(m)
		// Let the writer take the message unless it is stuck in a write to
		// the client that does not read, so the queue overflows because of
		// the client, not because of a burst. (On a very busy machine it
		// may still overflow first; the assertions below hold either way.)
		for i := 0; i < 100; i++ {
			if n, _ := queueState(slow); n == 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	if r := slow.CloseReason(); r != CloseSlowConsumer {
		t.Fatalf("close reason %+v", r)
	}
	// Messages after the close are ignored.
	slow.Enqueue(h.publish("big", `"late"`))

	// The other session, on the same writer pool, is unaffected while the
	// slow one's writer is still blocked.
	for range 3 {
		m := h.publish("small", payload("small", 0))
		fast.Enqueue(m)
		fastCl.expectMessage(m)
	}
	select {
	case <-slow.Done():
		t.Log("the slow session's close was written before its writer blocked")
	default:
	}

	// Now the client reads: a prefix of what was sent, in order, then the
	// final event with the cursor to resume from, then the end.
	cl := newSSEClient(t, client)
	cl.expectEvent("connection_established")
	var got int
	for {
		ev := cl.next()
		if !strings.HasPrefix(ev.Data, `"`) {
			m := eventType(t, ev.Data)
			if m["type"] != "disconnect" || m["reason"] != "slow_consumer" || m["reconnect"] != true {
				t.Fatalf("final event %s", ev.Data)
			}
			if got == 0 {
				checkCursor(t, ev.ID, "big", fanout.Position{Epoch: sent[0].Pos.Epoch})
			} else {
				checkCursor(t, ev.ID, "big", sent[got-1].Pos)
			}
			break
		}
		if got >= len(sent) || ev.Data != string(sent[got].Data) {
			t.Fatalf("message %d: unexpected %.20q", got, ev.Data)
		}
		checkCursor(t, ev.ID, "big", sent[got].Pos)
		got++
	}
	if got == len(sent) {
		t.Fatalf("all %d messages were written; the backlog should have been dropped", got)
	}
	cl.expectEOF()
	waitDone(t, slow)
	if fast.CloseReason().Reason != "" {
		t.Fatalf("fast session closed: %+v", fast.CloseReason())
	}
	t.Logf("slow consumer: %d messages sent, %d written before the disconnect", len(sent), got)
}

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

func TestSessionWSEnvelopeStream(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	opts := sseOpts("alice", "ch")
	s, wc := h.openWS(opts, WSEnvelope)
	var est map[string]any
	json.Unmarshal(wc.nextData(), &est)
	if est["type"] != "connection_established" || est["message"] != "WebSocket connected successfully" {
		t.Fatalf("established %v", est)
	}
	checkCursor(t, est["cursor"].(string), "ch", h.top("ch"))
	ms := h.publishN("ch", 3)
	for _, m := range ms {
		s.Enqueue(m)
	}
	for _, m := range ms {
		var env struct {
			Cursor, Channel string
			Data            json.RawMessage
		}
		if err := json.Unmarshal(wc.nextData(), &env); err != nil {
			t.Fatal(err)
		}
		if env.Channel != "ch" || !bytes.Equal(env.Data, m.Data) {
			t.Fatalf("envelope %+v, want %s", env, m.Data)
		}
		checkCursor(t, env.Cursor, "ch", m.Pos)
	}
	s.Close(CloseShutdown)
	var ev map[string]any
	json.Unmarshal(wc.nextData(), &ev)
	if ev["type"] != "disconnect" || ev["reason"] != "shutdown" {
		t.Fatalf("final event %v", ev)
	}
	checkCursor(t, ev["cursor"].(string), "ch", ms[2].Pos)
	f := wc.next()
	if code, reason := closePayload(f.payload); f.op != opClose || code != 1012 || reason != "shutdown" {
		t.Fatalf("close frame op %#x %d %q", f.op, code, reason)
	}
	waitDone(t, s)
}

func TestSessionWSRawStream(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	opts := sseOpts("alice", "ch")
	s, wc := h.openWS(opts, WSRaw)
	wc.nextData() // connection_established
	ms := h.publishN("ch", 3)
	enqueue(s, ms[0], ms[2]) // gap: 2 comes from history
	for _, m := range ms {
		if got := wc.nextData(); !bytes.Equal(got, m.Data) {
			t.Fatalf("got %s, want %s", got, m.Data)
		}
	}
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

// gatedConn holds its first Write until gate is closed and counts writes.
type gatedConn struct {
	net.Conn
	gate   chan struct{}
	writes atomic.Int32
}

func (g *gatedConn) Write(b []byte) (int, error) {
	if g.writes.Add(1) == 1 {
		<-g.gate
	}
	return g.Conn.Write(b)
}

func TestSessionBatchesWrites(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	s := h.resumed(sseOpts("u", "ch"))
	server, client := tcpPair(t)
	defer client.Close()
	g := &gatedConn{Conn: server, gate: make(chan struct{})}
	s.Attach(g)
	go s.ServeSSE(server)
	defer s.Close(CloseShutdown)
	// The writer is now blocked writing connection_established.
	waitFor(t, "the first write", func() bool { return g.writes.Load() == 1 })
	ms := h.publishN("ch", 100)
	for _, m := range ms {
		s.Enqueue(m)
	}
	close(g.gate)
	cl := newSSEClient(t, client)
	cl.expectEvent("connection_established")
	cl.expectMessages(ms...)
	if n := g.writes.Load(); n != 2 {
		t.Fatalf("%d writes for the established event and a burst of 100 messages, want 2", n)
	}
}

func TestSessionConcurrentEnqueue(t *testing.T) {
	// Live delivery from the broker races with keepalives, control events
	// and gap recovery; every message still arrives exactly once, in order.
	h := newHarness(t, Config{SSEHeartbeat: time.Millisecond, MaxQueue: 1 << 20}, fanout.MemoryConfig{HistorySize: 1000})
	s, cl, _ := h.openSSE(sseOpts("u", "ch"))
	const n = 300
	ms := h.publishN("ch", n)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i, m := range ms {
			if i%7 != 3 { // some are lost on the way: gaps
				s.Enqueue(m)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for range 50 {
			s.SendEvent([]byte(`{"type":"note"}`))
			runtime.Gosched()
		}
	}()
	wg.Wait()
	next := 0
	for next < n {
		ev := cl.next()
		if ev.Data == `{"type":"note"}` {
			continue
		}
		if ev.Data != string(ms[next].Data) {
			t.Fatalf("message %d: got %q, want %q", next, ev.Data, ms[next].Data)
		}
		next++
	}
}

func TestSessionGoroutinesReturnToBaseline(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		h := newHarness(t, Config{SSEHeartbeat: 10 * time.Millisecond, WSPingInterval: 10 * time.Millisecond}, fanout.MemoryConfig{})
		defer h.close()
		var sessions []*Session
		var clients []net.Conn
		for i := range 30 {
			opts := Options{ID: uint64(i), UserID: "u", Channels: []string{"a", "b"}, Transport: SSETransport{}}
			if i%3 == 0 {
				opts.Transport = WSTransport{Format: WSEnvelope}
			}
			s := NewSession(h.env, opts)
			if err := s.Resume(context.Background()); err != nil {
				t.Fatal(err)
			}
			server, client := tcpPair(t)
			s.Attach(server)
			if i%3 != 0 {
				go s.ServeSSE(server)
			}
			sessions = append(sessions, s)
			clients = append(clients, client)
		}
		ms := h.publishN("a", 5)
		for _, s := range sessions {
			enqueue(s, ms[0], ms[4]) // a gap: a history read in flight
		}
		for i, s := range sessions {
			switch i % 4 {
			case 0, 1:
				s.Close(CloseShutdown)
			case 2:
				if i%3 != 0 {
					clients[i].Close() // client leaves; the reader ends the session
				} else {
					s.Close(CloseIdle)
				}
			case 3:
				s.Close(CloseSlowConsumer)
			}
		}
		for _, c := range clients {
			go func() { // drain so final writes do not block
				_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
				var b [4096]byte
				for {
					if _, err := c.Read(b[:]); err != nil {
						return
					}
				}
			}()
		}
		for _, s := range sessions {
			waitDone(t, s)
		}
		for _, c := range clients {
			c.Close()
		}
	}()
	waitGoroutines(t, base)
}

// queueState returns the session's queue length and queued payload bytes.
func queueState(s *Session) (int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue), s.queueBytes
}

// assertDrained checks that once everything queued was written the byte
// account is back to zero, so MaxQueueBytes keeps its meaning.
func assertDrained(t *testing.T, s *Session) {
	t.Helper()
	waitFor(t, "an empty queue", func() bool { n, _ := queueState(s); return n == 0 })
	if _, b := queueState(s); b != 0 {
		t.Fatalf("queueBytes = %d with an empty queue", b)
	}
}

func TestSessionQueueBytesAccounting(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{HistorySize: 4})
	ms := h.publishN("ch", 10)
	// Resume replays 7..10 from history while live 9 and 10 overlap it.
	opts := sseOpts("u", "ch")
	opts.Since = Cursor{{Hash: ChannelHash("ch"), Pos: ms[5].Pos}}
	s := h.resumed(opts, ms[8], ms[9])
	cl := newSSEClient(t, h.attach(s))
	cl.expectEvent("connection_established")
	cl.expectMessages(ms[6:]...)
	assertDrained(t, s)
	// A gap filled from history, and duplicates.
	more := h.publishN("ch", 3)
	enqueue(s, more[2], more[2])
	cl.expectMessages(more...)
	assertDrained(t, s)
	// A gap history cannot fill any more.
	more = h.publishN("ch", 6)
	s.Enqueue(more[5])
	cl.expectEvent("stream_reset")
	cl.expectMessage(more[5])
	assertDrained(t, s)
}

// epochHistory is a Historian over scripted epochs of one channel: the
// last epoch is the channel's current one.
type epochHistory struct {
	mu     sync.Mutex
	epochs map[uint32][]*fanout.Message // offsets 1..n
	cur    uint32
}

func (e *epochHistory) History(_ context.Context, _ string, since fanout.Position, _ int) (fanout.HistoryResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	msgs := e.epochs[e.cur]
	res := fanout.HistoryResult{Top: fanout.Position{Epoch: e.cur, Offset: uint64(len(msgs))}}
	switch {
	case since.Epoch == 0:
		return res, nil
	case since.Epoch != e.cur:
		return res, fanout.ErrHistoryGone
	case since.Offset > uint64(len(msgs)):
		return res, fanout.ErrHistoryGone
	}
	res.Messages = append(res.Messages, msgs[since.Offset:]...)
	return res, nil
}

func (e *epochHistory) add(epoch uint32, n int) []*fanout.Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cur = epoch
	for range n {
		off := uint64(len(e.epochs[epoch]) + 1)
		e.epochs[epoch] = append(e.epochs[epoch], &fanout.Message{Channel: "ch", Pos: fanout.Position{Epoch: epoch, Offset: off},
			Data: []byte(payload("ch", off+uint64(epoch)*1000))})
	}
	return e.epochs[epoch]
}

func TestSessionGapAfterEpochChangeIsRecovered(t *testing.T) {
	// A gap recovered in one epoch must not make a gap at the same offset
	// in the next epoch look unrecoverable.
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	hist := &epochHistory{epochs: map[uint32][]*fanout.Message{}, cur: 10}
	h.env.History = hist
	s, cl, _ := h.openSSE(sseOpts("u", "ch"))
	old := hist.add(10, 3)
	enqueue(s, old[0], old[2]) // gap at offset 3, filled from history
	cl.expectMessages(old...)
	nw := hist.add(11, 3)
	s.Enqueue(nw[2]) // new epoch; 1 and 2 of it were lost on the way
	if r, ev := cl.expectEvent("stream_reset"); r["reason"] != "epoch_changed" {
		t.Fatalf("stream_reset = %s", ev.Data)
	}
	cl.expectMessages(nw...)
	assertDrained(t, s)
}

func TestSessionNilLogger(t *testing.T) {
	// Env.Log is optional (a session then logs to a discarding logger): a
	// failed write or history read must not dereference it.
	h := newHarness(t, Config{WriteTimeout: 200 * time.Millisecond}, fanout.MemoryConfig{})
	h.env.Log = nil
	opts := sseOpts("u", "ch")
	opts.Transport = WSTransport{Format: WSRaw} // no reader: only a write notices the client left
	s, c := h.open(opts)
	newWSClient(t, c).nextData()
	c.Close()
	m := h.publish("ch", strings.Repeat("x", 64<<10))
	deadline := time.Now().Add(waitTimeout)
	for {
		select {
		case <-s.Done():
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("writes to a closed peer never failed")
		}
		// Raw bytes (as a pong would be) until a write fails.
		s.enqueue(item{kind: itemRaw, b: m.Data})
		time.Sleep(time.Millisecond)
	}
}

type failingHistory struct{ Historian }

func (f failingHistory) History(ctx context.Context, ch string, since fanout.Position, limit int) (fanout.HistoryResult, error) {
	if since.Epoch == 0 {
		return f.Historian.History(ctx, ch, since, limit)
	}
	return fanout.HistoryResult{}, context.DeadlineExceeded
}

func TestSessionGapHistoryErrorClosesInternal(t *testing.T) {
	for _, nilLog := range []bool{false, true} {
		h := newHarness(t, Config{}, fanout.MemoryConfig{})
		h.env.History = failingHistory{h.broker}
		if nilLog {
			h.env.Log = nil
		}
		s, cl, _ := h.openSSE(sseOpts("u", "ch"))
		ms := h.publishN("ch", 3)
		enqueue(s, ms[0], ms[2]) // gap; the history read fails
		cl.expectMessage(ms[0])
		ev, raw := cl.expectEvent("disconnect")
		if ev["reason"] != "internal_error" || ev["reconnect"] != true {
			t.Fatalf("disconnect = %s", raw.Data)
		}
		checkCursor(t, raw.ID, "ch", ms[0].Pos) // resume from what was written
		cl.expectEOF()
		waitDone(t, s)
	}
}

func TestSessionManyChannelsCursor(t *testing.T) {
	// More channels than appendCursorLocked's stack buffer holds.
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	var chans []string
	for i := range 12 {
		chans = append(chans, fmt.Sprintf("ch%d", i))
	}
	s, cl, ev := h.openSSE(sseOpts("u", chans...))
	if cur, err := ParseCursor(ev.ID); err != nil || len(cur) != len(chans) {
		t.Fatalf("cursor %q: %d entries, %v", ev.ID, len(cur), err)
	}
	m := h.publish("ch11", payload("ch11", 1))
	s.Enqueue(m)
	cl.expectMessage(m)
	for _, ch := range chans[:11] {
		checkCursor(t, cl.p.lastID, ch, h.top(ch))
	}
}

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

// TestSessionRepliesBounded: replies to the client (pongs, error events)
// count against the queue limits like messages: a session whose writer
// cannot drain (not yet attached here) is closed as a slow consumer once
// either limit is reached, with its backlog dropped.
func TestSessionRepliesBounded(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		it   item
		max  int // replies accepted before the close
	}{
		{"messages limit", Config{MaxQueue: 8}, item{kind: itemRaw, b: appendFrame(nil, opPong, []byte("x"))}, 8},
		// 125-byte pong events: 8 fit in 1000 bytes.
		{"bytes limit", Config{MaxQueueBytes: 1000}, item{kind: itemEvent, b: PongEvent([]byte(`"` + strings.Repeat("t", 95) + `"`))}, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.cfg, fanout.MemoryConfig{})
			s := NewSession(h.env, Options{ID: 1, UserID: "u", Channels: []string{"ch"}, Transport: WSTransport{Format: WSRaw}})
			for i := range 1000 {
				s.reply(tc.it)
				if s.CloseReason() != (CloseReason{}) {
					if i != tc.max {
						t.Fatalf("closed after %d replies, want %d", i, tc.max)
					}
					break
				}
			}
			if s.CloseReason() != CloseSlowConsumer {
				t.Fatalf("CloseReason = %+v, want slow_consumer", s.CloseReason())
			}
			s.mu.Lock()
			n, bytes := len(s.queue), s.queueBytes
			s.mu.Unlock()
			if n != 1 || bytes != 0 {
				t.Fatalf("after the close: %d items (%d bytes) queued, want only the close", n, bytes)
			}
		})
	}
}

// overlapHistory is the memory broker's history with every read held until
// want reads are in flight at once (or 5 s pass), so a test sees
// whether Resume issues its reads together or one after another.
type overlapHistory struct {
	*fanout.MemoryBroker
	want int

	mu       sync.Mutex
	inFlight int
	most     int
	all      chan struct{}
}

func (o *overlapHistory) History(ctx context.Context, ch string, since fanout.Position, limit int) (fanout.HistoryResult, error) {
	o.mu.Lock()
	o.inFlight++
	o.most = max(o.most, o.inFlight)
	if o.inFlight == o.want {
		close(o.all)
	}
	o.mu.Unlock()
	select {
	case <-o.all:
	case <-time.After(5 * time.Second): // reads one after another: fail in seconds, not minutes
	}
	defer func() {
		o.mu.Lock()
		o.inFlight--
		o.mu.Unlock()
	}()
	return o.MemoryBroker.History(ctx, ch, since, limit)
}

// TestSessionResumeReadsChannelsAtOnce: a connection's history reads (one
// per channel) are in flight together, so with Redis a connect costs one
// round trip for all of them; the replay is still exact and in channel
// order.
func TestSessionResumeReadsChannelsAtOnce(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	a := h.publishN("a", 4)
	b := h.publishN("b", 4)
	oh := &overlapHistory{MemoryBroker: h.broker, want: 3, all: make(chan struct{})}
	h.env.History = oh
	opts := sseOpts("u", "a", "b", "c")
	opts.Since = Cursor{{Hash: ChannelHash("a"), Pos: a[1].Pos}, {Hash: ChannelHash("b"), Pos: b[2].Pos}}
	start := time.Now()
	_, c := h.open(opts)
	if oh.most != 3 {
		t.Fatalf("at most %d history reads in flight at once, want all 3 (took %s)", oh.most, time.Since(start))
	}
	cl := newSSEClient(t, c)
	cl.expectEvent("connection_established")
	cl.expectMessages(append(append([]*fanout.Message(nil), a[2:]...), b[3:]...)...)
}
