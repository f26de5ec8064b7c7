package protocols

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"github.com/heraldrt/herald/fanout"
)

// wsServer serves WebSocket sessions with ServeWS on a real fasthttp server
// on a loopback listener, the way the edge does.
type wsServer struct {
	addr     string
	sessions chan *Session
}

func startWSServer(t *testing.T, h *harness, opts Options) *wsServer {
	t.Helper()
	ws := &wsServer{sessions: make(chan *Session, 16)}
	up := websocket.FastHTTPUpgrader{CheckOrigin: func(*fasthttp.RequestCtx) bool { return true }}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		err := up.Upgrade(ctx, func(c *websocket.Conn) {
			s := NewSession(h.env, opts)
			if err := s.Resume(context.Background()); err != nil {
				t.Errorf("Resume: %v", err)
				c.Close()
				return
			}
			conn := c.UnderlyingConn()
			if h.env.Poller != nil {
				conn = ctx.Conn() // the socket itself, as edge does
			}
			s.Attach(conn)
			ws.sessions <- s
			// Serve until the read side ends: fasthttp closes the socket
			// when this handler returns.
			ended := make(chan struct{})
			s.Run(conn, func() { close(ended) })
			<-ended
		})
		if err != nil {
			t.Errorf("Upgrade: %v", err)
		}
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ws.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_ = srv.ShutdownWithContext(ctx)
	})
	return ws
}

// dial connects a WebSocket client and returns it with its server session.
func (ws *wsServer) dial(t *testing.T, d *websocket.Dialer) (*websocket.Conn, *Session) {
	t.Helper()
	if d == nil {
		d = &websocket.Dialer{HandshakeTimeout: waitTimeout}
	}
	c, _, err := d.Dial("ws://"+ws.addr+"/ws/notifications/", nil)
	if err != nil {
		t.Fatal(err)
	}
	var s *Session
	select {
	case s = <-ws.sessions:
	case <-time.After(waitTimeout):
		t.Fatal("no session")
	}
	t.Cleanup(func() {
		c.Close()
		s.Close(CloseShutdown)
		waitDone(t, s)
	})
	return c, s
}

func readJSON(t *testing.T, c *websocket.Conn) (map[string]any, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	mt, data, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if mt != websocket.TextMessage {
		t.Fatalf("message type %d", mt)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%q: %v", data, err)
	}
	return m, string(data)
}

func send(t *testing.T, c *websocket.Conn, mt int, data string) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(waitTimeout))
	if err := c.WriteMessage(mt, []byte(data)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// dialAlice serves a session for alice on channel "ch" in format from h
// over WebSocket, dials it with d (nil: the defaults) and reads its
// connection_established event.
func dialAlice(t *testing.T, h *harness, format WSFormat, d *websocket.Dialer) (*websocket.Conn, *Session) {
	t.Helper()
	ws := startWSServer(t, h, Options{ID: 1, UserID: "alice", Channels: []string{"ch"}, Transport: WSTransport{Format: format}})
	c, s := ws.dial(t, d)
	readJSON(t, c)
	return c, s
}

// expectClosed reads until the server's close frame, which must carry
// code, and waits for the session to end.
func expectClosed(t *testing.T, c *websocket.Conn, s *Session, code int) {
	t.Helper()
	if got := expectClose(t, c); got != code {
		t.Fatalf("close code %d, want %d", got, code)
	}
	waitDone(t, s)
}

// expectClosedWith is expectClosed with want's code, and checks that the
// session ended for want.
func expectClosedWith(t *testing.T, c *websocket.Conn, s *Session, want CloseReason) {
	t.Helper()
	expectClosed(t, c, s, int(want.WSCode))
	if s.CloseReason() != want {
		t.Fatalf("CloseReason = %+v", s.CloseReason())
	}
}

// expectClose reads until the server's close frame and returns its code.
func expectClose(t *testing.T, c *websocket.Conn) int {
	t.Helper()
	for {
		_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
		_, data, err := c.ReadMessage()
		if err == nil {
			continue // events written before the close
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("read ended with %v, want a close frame (last data %q)", err, data)
		}
		return ce.Code
	}
}

func TestServeWSPingPongAndMessages(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	ws := startWSServer(t, h, Options{ID: 1, UserID: "alice", Channels: []string{"user:alice"}, Transport: WSTransport{Format: WSRaw}})
	c, s := ws.dial(t, nil)
	est, raw := readJSON(t, c)
	if est["type"] != "connection_established" || est["message"] != "WebSocket connected successfully" || est["user_id"] != "alice" {
		t.Fatalf("first message %s", raw)
	}
	// The guide's ping, with a string and a numeric timestamp.
	send(t, c, websocket.TextMessage, `{"type":"ping","timestamp":"2024-05-01T12:00:00.000Z"}`)
	if _, raw := readJSON(t, c); raw != `{"type":"pong","timestamp":"2024-05-01T12:00:00.000Z"}` {
		t.Fatalf("pong = %s", raw)
	}
	send(t, c, websocket.TextMessage, `{"type":"ping","timestamp":1714564800123}`)
	if _, raw := readJSON(t, c); raw != `{"type":"pong","timestamp":1714564800123}` {
		t.Fatalf("pong = %s", raw)
	}
	// A protocol-level ping is answered with a pong frame, in order with
	// the session's other writes.
	pong := make(chan string, 1)
	c.SetPongHandler(func(data string) error { pong <- data; return nil })
	if err := c.WriteControl(websocket.PingMessage, []byte("hb-1"), time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	send(t, c, websocket.TextMessage, `{"type":"ping"}`)
	if _, raw := readJSON(t, c); raw != `{"type":"pong"}` {
		t.Fatalf("pong = %s", raw)
	}
	select {
	case p := <-pong:
		if p != "hb-1" {
			t.Fatalf("pong frame payload %q", p)
		}
	default:
		t.Fatal("no pong frame before the JSON pong")
	}
	// Live messages, byte for byte.
	ms := h.publishN("user:alice", 2)
	for _, m := range ms {
		s.Enqueue(m)
	}
	for _, m := range ms {
		if _, raw := readJSON(t, c); raw != string(m.Data) {
			t.Fatalf("message %s, want %s", raw, m.Data)
		}
	}
	// The client closes: the session echoes the close and ends.
	if err := c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c, s, websocket.CloseNormalClosure)
}

func TestServeWSEnvelopeEvents(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	c, s := dialAlice(t, h, WSEnvelope, nil)
	m := h.publish("ch", `{"type":"notification"}`)
	s.Enqueue(m)
	env, raw := readJSON(t, c)
	if env["channel"] != "ch" || env["cursor"] == nil {
		t.Fatalf("envelope %s", raw)
	}
	send(t, c, websocket.TextMessage, `{"type":"ping","timestamp":5}`)
	pong, raw := readJSON(t, c)
	if pong["type"] != "pong" || pong["timestamp"] != 5.0 {
		t.Fatalf("pong %s", raw)
	}
	checkCursor(t, pong["cursor"].(string), "ch", m.Pos)
}

func TestServeWSInvalidInputKeepsConnection(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	c, s := dialAlice(t, h, WSRaw, nil)
	for _, in := range []string{`not json`, `[1,2]`, `{"type":"subscribe"}`, `{"timestamp":1}`, `{"type":"refresh"}`, ``} {
		send(t, c, websocket.TextMessage, in)
		ev, raw := readJSON(t, c)
		if ev["type"] != "error" || ev["message"] == "" {
			t.Fatalf("reply to %q: %s", in, raw)
		}
	}
	// Still open.
	send(t, c, websocket.TextMessage, `{"type":"ping"}`)
	if _, raw := readJSON(t, c); raw != `{"type":"pong"}` {
		t.Fatalf("pong = %s", raw)
	}
	if r := s.CloseReason(); r.Reason != "" || r.WSCode != 0 {
		t.Fatalf("session closing: %+v", r)
	}
	// Refresh without Env.Refresh configured.
	send(t, c, websocket.TextMessage, `{"type":"refresh","token":"t"}`)
	if ev, raw := readJSON(t, c); ev["type"] != "error" || !strings.Contains(ev["message"].(string), "not enabled") {
		t.Fatalf("refresh reply %s", raw)
	}
	// Invalid UTF-8 in a text frame closes with 1007 (RFC 6455 8.1).
	send(t, c, websocket.TextMessage, "{\"type\":\"ping\",\"timestamp\":\"\xff\"}")
	expectClosed(t, c, s, websocket.CloseInvalidFramePayloadData)
}

func TestServeWSBinaryFrameCloses1003(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	c, s := dialAlice(t, h, WSRaw, nil)
	send(t, c, websocket.BinaryMessage, "\x00\x01")
	expectClosedWith(t, c, s, CloseUnsupportedData)
}

func TestServeWSTooBigCloses1009(t *testing.T) {
	for _, tt := range []struct {
		name string
		d    *websocket.Dialer
	}{
		{"one frame", nil},
		// Small client write buffer: the message arrives as several
		// frames, each below the limit, together above it.
		{"fragmented", &websocket.Dialer{HandshakeTimeout: waitTimeout, WriteBufferSize: 256}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{WSReadLimit: 1024}, fanout.MemoryConfig{})
			c, s := dialAlice(t, h, WSRaw, tt.d)
			// Exactly the limit is accepted.
			at := `{"type":"ping","pad":"` + strings.Repeat("p", 1024-len(`{"type":"ping","pad":""}`)) + `"}`
			send(t, c, websocket.TextMessage, at)
			if _, raw := readJSON(t, c); raw != `{"type":"pong"}` {
				t.Fatalf("reply to a message at the limit: %s", raw)
			}
			// The server may close while later fragments are still being
			// written, so the write itself may fail; the close frame it
			// sent first is still there to read.
			_ = c.SetWriteDeadline(time.Now().Add(waitTimeout))
			_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","pad":"`+strings.Repeat("p", 2000)+`"}`))
			expectClosedWith(t, c, s, CloseTooBig)
		})
	}
}

func TestServeWSRefresh(t *testing.T) {
	h := newHarness(t, Config{TokenExpiringLead: time.Minute}, fanout.MemoryConfig{})
	newExp := time.Now().Add(time.Hour).Truncate(time.Second)
	h.env.Refresh = func(token string, _ []string) (string, time.Time, error) {
		switch token {
		case "other-user":
			return "bob", newExp, nil
		case "good":
			return "alice", newExp, nil
		}
		return "", time.Time{}, errors.New("signature invalid")
	}
	expires := time.Now().Add(2 * time.Second)
	ws := startWSServer(t, h, Options{ID: 1, UserID: "alice", Channels: []string{"ch"}, ExpiresAt: expires, Transport: WSTransport{Format: WSEnvelope}})
	c, s := ws.dial(t, nil)
	readJSON(t, c) // connection_established
	// The token expires within the lead: an envelope client is warned.
	if ev, raw := readJSON(t, c); ev["type"] != "token_expiring" || ev["expires_at"] != float64(expires.Unix()) {
		t.Fatalf("want token_expiring, got %s", raw)
	}

	send(t, c, websocket.TextMessage, `{"type":"refresh","token":"other-user"}`)
	if ev, raw := readJSON(t, c); ev["type"] != "error" || !strings.Contains(ev["message"].(string), "another user") {
		t.Fatalf("refresh for another user: %s", raw)
	}
	send(t, c, websocket.TextMessage, `{"type":"refresh","token":"forged"}`)
	if ev, raw := readJSON(t, c); ev["type"] != "error" || !strings.Contains(ev["message"].(string), "signature invalid") {
		t.Fatalf("rejected refresh: %s", raw)
	}
	if !s.ExpiresAt().Equal(expires) {
		t.Fatalf("a rejected refresh changed the expiry to %v", s.ExpiresAt())
	}
	send(t, c, websocket.TextMessage, `{"type":"refresh","token":"good"}`)
	ev, raw := readJSON(t, c)
	if ev["type"] != "refreshed" || ev["expires_at"] != float64(newExp.Unix()) {
		t.Fatalf("refresh: %s", raw)
	}
	if !s.ExpiresAt().Equal(newExp) {
		t.Fatalf("ExpiresAt = %v, want %v", s.ExpiresAt(), newExp)
	}
	refreshedAt := time.Now()
	// Past the old expiry the connection is still open.
	waitFor(t, "the old expiry", func() bool { return time.Now().After(expires.Add(200 * time.Millisecond)) })
	if refreshedAt.After(expires) {
		t.Skip("machine too slow: the refresh came after the old expiry")
	}
	send(t, c, websocket.TextMessage, `{"type":"ping"}`)
	if pong, raw := readJSON(t, c); pong["type"] != "pong" {
		t.Fatalf("after the old expiry: %s", raw)
	}
}

// TestServeWSReadTimeout: a client that sends nothing, not even a pong, for
// the read timeout is told so with close 1001 "going_away" — no sooner
// than the timeout and not much later.
func TestServeWSReadTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h := newHarness(t, Config{WSReadTimeout: timeout, WSPingInterval: time.Hour}, fanout.MemoryConfig{})
	ws := startWSServer(t, h, Options{ID: 1, UserID: "alice", Channels: []string{"ch"}, Transport: WSTransport{Format: WSRaw}})
	start := time.Now()
	c, s := ws.dial(t, nil)
	readJSON(t, c) // connection_established
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	_, _, err := c.ReadMessage()
	took := time.Since(start)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway || ce.Text != "going_away" {
		t.Fatalf("read ended with %v, want close 1001 going_away", err)
	}
	if took < timeout || took > timeout+3*time.Second {
		t.Fatalf("closed after %v, want about %v", took, timeout)
	}
	waitDone(t, s)
	if s.CloseReason() != CloseGoingAway {
		t.Fatalf("CloseReason = %+v", s.CloseReason())
	}
}

// TestServeWSProtocolErrorDuringBurst: a client breaks the protocol while
// the writer pool is flushing a burst to it. Herald is the socket's only
// writer, so the client's byte stream is whole frames only: messages
// intact and in order, then the close frame 1002, then nothing.
func TestServeWSProtocolErrorDuringBurst(t *testing.T) {
	h := newHarness(t, Config{MaxQueue: 1 << 16, MaxQueueBytes: 1 << 30, WriteTimeout: waitTimeout}, fanout.MemoryConfig{})
	s := NewSession(h.env, Options{ID: 1, UserID: "u", Channels: []string{"ch"}, Transport: WSTransport{Format: WSRaw}})
	if err := s.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 4<<10)
	var msgs []*fanout.Message
	for i := range 300 {
		msgs = append(msgs, h.publish("ch", `{"type":"n","i":`+strconv.Itoa(i)+`,"pad":"`+pad+`"}`))
	}
	server, client := tcpPair(t)
	defer client.Close()
	s.Attach(server)
	go s.ServeWS(server)
	go func() {
		for _, m := range msgs {
			if s.Enqueue(m) == Closed {
				return
			}
			time.Sleep(100 * time.Microsecond) // a stream, not one batch
		}
	}()
	_ = client.SetReadDeadline(time.Now().Add(waitTimeout))
	r := bufio.NewReader(client)
	next := 0
	for {
		f, err := readWSFrame(r)
		if err != nil {
			t.Fatalf("after %d messages: %v (the stream must end with a whole close frame)", next, err)
		}
		if !f.fin {
			t.Fatal("fragmented server frame")
		}
		if f.op == opClose {
			if code, reason := closePayload(f.payload); code != 1002 || reason != "protocol_error" {
				t.Fatalf("close %d %q", code, reason)
			}
			break
		}
		if f.op != opText {
			continue // a keepalive
		}
		if strings.Contains(string(f.payload), "connection_established") {
			continue
		}
		if next >= len(msgs) || string(f.payload) != string(msgs[next].Data) {
			t.Fatalf("frame %d is not message %d intact: %.60q", next, next, f.payload)
		}
		next++
		if next == 10 {
			// An unmasked client frame, while the burst is being written.
			if _, err := client.Write([]byte{0x81, 0x02, '{', '}'}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if rest, err := io.ReadAll(r); len(rest) > 0 {
		t.Fatalf("%d bytes after the close frame (%v)", len(rest), err)
	}
	waitDone(t, s)
	t.Logf("%d of %d messages before the close frame", next, len(msgs))
}
