package protocols

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strings"
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
