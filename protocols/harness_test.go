package protocols

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/netpoll"
)

// parkAll runs the harness's sessions parked on a netpoll.Poller (as with
// server.netpoll) instead of with a reader goroutine each:
//
//	go test -run 'TestServeWS|TestServeSSE|TestSession' ./protocols -args -netpoll
var parkAll = flag.Bool("netpoll", false, "serve the tests' sessions parked on epoll (server.netpoll)")

// waitTimeout bounds every wait in these tests. It is far above what any
// step needs, so a slow, shared, race-instrumented machine does not make
// the tests flaky; only a real hang reaches it.
const waitTimeout = 30 * time.Second

// harness is an Env backed by a real MemoryBroker, plus helpers to open
// sessions on real loopback TCP sockets.
type harness struct {
	t      testing.TB
	env    *Env
	broker *fanout.MemoryBroker
	once   sync.Once
}

func newHarness(t testing.TB, cfg Config, mcfg fanout.MemoryConfig) *harness {
	t.Helper()
	h := &harness{t: t, broker: fanout.NewMemory(mcfg, nil)}
	h.env = &Env{
		Config:  cfg.Defaults(),
		Writers: NewWriters(4),
		History: h.broker,
		Log:     slog.New(slog.DiscardHandler),
	}
	if *parkAll {
		h.park(t)
	}
	t.Cleanup(h.close)
	return h
}

// park gives the harness's Env a poller, so sessions started with Run are
// parked.
func (h *harness) park(t testing.TB) {
	t.Helper()
	p, err := netpoll.New()
	if err != nil {
		t.Fatal(err)
	}
	h.env.Poller = p
}

func (h *harness) close() {
	h.once.Do(func() {
		h.env.Writers.Close()
		h.broker.Close()
		if h.env.Poller != nil {
			_ = h.env.Poller.Close()
		}
	})
}

// publish publishes data to ch and returns the broker's message, as the hub
// would receive it.
func (h *harness) publish(ch, data string) *fanout.Message {
	h.t.Helper()
	res, err := h.broker.Publish(context.Background(), ch, []byte(data), fanout.PublishOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	hist, err := h.broker.History(context.Background(), ch, fanout.Position{Epoch: res.Pos.Epoch, Offset: res.Pos.Offset - 1}, 1)
	if err != nil || len(hist.Messages) != 1 || hist.Messages[0].Pos != res.Pos {
		h.t.Fatalf("published message %v not in history: %v %v", res.Pos, hist.Messages, err)
	}
	return hist.Messages[0]
}

// publishN publishes n messages "<ch>#<offset>" and returns them.
func (h *harness) publishN(ch string, n int) []*fanout.Message {
	h.t.Helper()
	out := make([]*fanout.Message, n)
	for i := range out {
		top := h.top(ch)
		out[i] = h.publish(ch, payload(ch, top.Offset+1))
	}
	return out
}

func payload(ch string, off uint64) string {
	b, _ := json.Marshal(map[string]any{"type": "notification", "channel": ch, "n": off})
	return string(b)
}

func (h *harness) top(ch string) fanout.Position {
	h.t.Helper()
	res, err := h.broker.History(context.Background(), ch, fanout.Position{}, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	return res.Top
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		c   net.Conn
		err error
	}
	acc := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		acc <- result{c, err}
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-acc
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.c, client
}

// open creates a session for opts, resumes it, attaches it to the server
// end of a loopback connection and, for SSE, starts its read loop (as the
// edge does). It returns the client end.
func (h *harness) open(opts Options) (*Session, net.Conn) {
	h.t.Helper()
	s := h.resumed(opts)
	return s, h.attach(s)
}

// openWS opens a session for opts over WebSocket in format (see open) and
// returns it with the client reading its frames.
func (h *harness) openWS(opts Options, format WSFormat) (*Session, *wsClient) {
	h.t.Helper()
	opts.Transport = WSTransport{Format: format}
	s, c := h.open(opts)
	return s, newWSClient(h.t, c)
}

// resumed creates a session for opts, hands it live first (what a session
// registered with the hub receives before Resume reads history) and
// resumes it; it is not attached yet.
func (h *harness) resumed(opts Options, live ...*fanout.Message) *Session {
	h.t.Helper()
	s := NewSession(h.env, opts)
	enqueue(s, live...)
	if err := s.Resume(context.Background()); err != nil {
		h.t.Fatalf("Resume: %v", err)
	}
	return s
}

// openSSE opens an SSE session for opts (see open) and reads its first
// event, which must be connection_established; it returns the session,
// the client reading its stream and that event.
func (h *harness) openSSE(opts Options) (*Session, *sseClient, sseEvent) {
	h.t.Helper()
	s, c := h.open(opts)
	cl := newSSEClient(h.t, c)
	_, ev := cl.expectEvent("connection_established")
	return s, cl, ev
}

// enqueue hands ms to s in order, as its subscriptions would.
func enqueue(s *Session, ms ...*fanout.Message) {
	for _, m := range ms {
		s.Enqueue(m)
	}
}

func (h *harness) attach(s *Session) net.Conn {
	h.t.Helper()
	server, client := tcpPair(h.t)
	s.Attach(server)
	if _, ok := s.Transport().(SSETransport); ok {
		s.Run(server, func() {})
	}
	h.t.Cleanup(func() {
		s.Close(CloseShutdown)
		client.Close()
		select {
		case <-s.Done():
		case <-time.After(waitTimeout):
			h.t.Errorf("session %d did not end", s.ID())
		}
	})
	return client
}

func sseOpts(user string, channels ...string) Options {
	return Options{ID: 1, UserID: user, Channels: channels, Transport: SSETransport{}}
}

// sseClient reads a session's event stream from the client end.
type sseClient struct {
	t    testing.TB
	conn net.Conn
	p    *sseParser
}

func newSSEClient(t testing.TB, c net.Conn) *sseClient {
	return &sseClient{t: t, conn: c, p: newSSEParser(c)}
}

func (c *sseClient) next() sseEvent {
	c.t.Helper()
	ev, err := c.tryNext()
	if err != nil {
		c.t.Fatalf("reading event: %v", err)
	}
	return ev
}

func (c *sseClient) tryNext() (sseEvent, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	return c.p.next()
}

// expectEOF reads until the server closes the stream; no event may come.
func (c *sseClient) expectEOF() {
	c.t.Helper()
	ev, err := c.tryNext()
	if err == nil {
		c.t.Fatalf("event %+v where the stream should end", ev)
	}
	if !isClosed(err) {
		c.t.Fatalf("stream did not end: %v", err)
	}
}

// isClosed reports whether a read error means the peer closed the socket
// (EOF, or a reset when it closed with unread input), not a read timeout.
func isClosed(err error) bool {
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// eventType decodes the "type" of a JSON event.
func eventType(t testing.TB, data string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		t.Fatalf("event %q: %v", data, err)
	}
	return m
}

func (c *sseClient) expectEvent(typ string) (map[string]any, sseEvent) {
	c.t.Helper()
	ev := c.next()
	m := eventType(c.t, ev.Data)
	if m["type"] != typ {
		c.t.Fatalf("got event %s, want type %q", ev.Data, typ)
	}
	return m, ev
}

// expectMessage reads the next event and checks it is m, with an id that
// is a cursor holding m's position.
func (c *sseClient) expectMessage(m *fanout.Message) {
	c.t.Helper()
	ev := c.next()
	if ev.Data != string(m.Data) {
		c.t.Fatalf("got %q, want message %v %q", ev.Data, m.Pos, m.Data)
	}
	checkCursor(c.t, ev.ID, m.Channel, m.Pos)
}

func checkCursor(t testing.TB, id, ch string, want fanout.Position) Cursor {
	t.Helper()
	cur, err := ParseCursor(id)
	if err != nil {
		t.Fatalf("id %q is not a cursor: %v", id, err)
	}
	if p, ok := cur.Lookup(ChannelHash(ch)); !ok || p != want {
		t.Fatalf("cursor %q has %v for %s, want %v", id, p, ch, want)
	}
	return cur
}

func (c *sseClient) expectMessages(ms ...*fanout.Message) {
	c.t.Helper()
	for _, m := range ms {
		c.expectMessage(m)
	}
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitDone(t testing.TB, s *Session) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(waitTimeout):
		t.Fatalf("session %d did not end", s.ID())
	}
}

// waitGoroutines waits until the goroutine count is back to at most base.
func waitGoroutines(t testing.TB, base int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, baseline %d:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wsClient reads raw server frames from the client end of a session's
// socket (session tests that do not need a WebSocket handshake).
type wsClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func newWSClient(t testing.TB, c net.Conn) *wsClient {
	return &wsClient{t: t, conn: c, r: bufio.NewReader(c)}
}

func (c *wsClient) next() wsFrame {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	f, err := readWSFrame(c.r)
	if err != nil {
		c.t.Fatalf("reading frame: %v", err)
	}
	return f
}

// nextData skips pings and returns the next text frame's payload.
func (c *wsClient) nextData() []byte {
	c.t.Helper()
	for {
		f := c.next()
		switch f.op {
		case opPing:
			continue
		case opText:
			return f.payload
		default:
			c.t.Fatalf("frame op %#x (%q), want text", f.op, f.payload)
		}
	}
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
