package protocols

import (
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/fanout"
)

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
