// Package floor is the yardstick Herald is measured against: the least a
// server built on the same libraries (fasthttp and fasthttp/websocket) must
// spend to hold WebSocket and SSE connections and push a message to them.
//
// It serves Herald's paths — GET /ws/notifications/ and
// /sse/notifications/ (any token is accepted; its "sub" claim is read
// without verification to route per-user messages), and POST /api/publish
// with {"channel":"broadcast","data":…} or {"user_id":"…","data":…} — sends
// connection_established first, and writes each published payload as it is
// (one WebSocket text frame, or one SSE "data:" event). It has no history,
// cursors, queues, limits, authentication or keepalives: whatever Herald
// costs beyond it is the price of those features.
//
// With Options.Coalesce set it adds the one optimisation that matters
// under overload: each connection gets a queue, and whatever is pending
// when a writer gets to it leaves in one write (up to Coalesce messages),
// still without history, cursors or limits.
//
// With Options.Netpoll set, idle connections hold no goroutine: they are
// parked on epoll readiness (package internal/netpoll) and read only when
// bytes arrive, so what an idle connection costs without its reader
// goroutine can be measured.
package floor

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"github.com/heraldrt/herald/internal/netpoll"
)

// writeTimeout bounds one write to a client.
const writeTimeout = 5 * time.Second

// Options configure a floor server.
type Options struct {
	// Coalesce, when > 0, queues each connection's messages and writes up
	// to this many pending ones in one write; 0 writes each message to
	// every recipient as it is published.
	Coalesce int
	// Netpoll parks idle connections on epoll readiness instead of
	// keeping a goroutine blocked in Read for each (Linux only).
	Netpoll bool
}

// coalesceWriters is the number of goroutines that flush connection
// queues in coalescing mode: as many as Herald's default writer pool.
const coalesceWriters = 64

// Server is the floor server.
type Server struct {
	opts Options
	poll *netpoll.Poller // Options.Netpoll, or nil
	wq   chan *conn      // coalescing mode: connections with pending messages
	log  *slog.Logger
	http *fasthttp.Server
	up   websocket.FastHTTPUpgrader
	fan  chan outMsg
	done chan struct{}
	wg   sync.WaitGroup
	seq  atomic.Uint64

	mu    sync.RWMutex
	conns map[*conn]struct{}
	users map[string]map[*conn]struct{}
}

// conn is one client. Writes are serialised by wmu.
type conn struct {
	user string
	ws   *websocket.Conn // WebSocket, or nil
	raw  net.Conn        // SSE socket, parked WebSocket's socket, or nil
	// wsRaw: a parked WebSocket, whose frames the floor writes on raw
	// itself (the library's Conn, and the handshake buffers it holds, are
	// dropped after the upgrade).
	wsRaw bool
	wmu   sync.Mutex
	dead  atomic.Bool

	// Netpoll mode: the parked socket's registration, and the start of a
	// client frame whose rest has not arrived yet (nil when none).
	pw   *netpoll.Waiter
	part []byte

	// Coalescing mode: messages waiting for a writer, and whether the
	// connection is already waiting for (or held by) one.
	qmu       sync.Mutex
	pending   [][]byte
	scheduled bool
}

// outMsg is a published message on its way to the fan-out goroutine.
type outMsg struct {
	user string // "" for broadcast
	data []byte
}

// New returns a floor server that logs to log, writing each message as it
// is published.
func New(log *slog.Logger) *Server {
	s, _ := NewWith(log, Options{}) // fails only with Netpoll
	return s
}

// NewWith returns a floor server configured by opts. It fails only when
// Options.Netpoll is set and epoll is unavailable.
func NewWith(log *slog.Logger, opts Options) (*Server, error) {
	s := &Server{opts: opts, log: log, fan: make(chan outMsg, 4096), done: make(chan struct{}),
		conns: map[*conn]struct{}{}, users: map[string]map[*conn]struct{}{}}
	s.up = websocket.FastHTTPUpgrader{
		// The same buffer choices as Herald: a small read buffer and pooled
		// write buffers, so the floor is what the libraries cost at best.
		ReadBufferSize:  512,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     func(*fasthttp.RequestCtx) bool { return true },
	}
	s.http = &fasthttp.Server{
		Handler:               s.route,
		Name:                  "floor",
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		CloseOnShutdown:       true,
		// Parked connections outlive their hijack handler.
		KeepHijackedConns:  opts.Netpoll,
		ReadTimeout:        10 * time.Second,
		MaxRequestBodySize: 1 << 20,
	}
	if opts.Netpoll {
		p, err := netpoll.New()
		if err != nil {
			return nil, fmt.Errorf("floor: %w", err)
		}
		s.poll = p
	}
	s.wg.Add(1)
	go s.fanout()
	if opts.Coalesce > 0 {
		s.wq = make(chan *conn, 1<<16)
		for range coalesceWriters {
			s.wg.Go(s.writer)
		}
	}
	return s, nil
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.http.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("floor: serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// Shutdown stops the server and closes every connection.
func (s *Server) Shutdown() error {
	err := s.http.Shutdown()
	close(s.done)
	s.wg.Wait()
	s.mu.Lock()
	for c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	if s.poll != nil {
		_ = s.poll.Close()
	}
	if err != nil {
		return fmt.Errorf("floor: shutdown: %w", err)
	}
	return nil
}

// Len returns the number of connected clients.
func (s *Server) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.conns)
}

func (s *Server) route(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case "/ws/notifications/", "/ws/notifications":
		s.handleWS(ctx)
	case "/sse/notifications/", "/sse/notifications":
		s.handleSSE(ctx)
	case "/api/publish":
		s.handlePublish(ctx)
	case "/healthz":
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"ok"}`)
	default:
		ctx.SetStatusCode(fasthttp.StatusNotFound)
	}
}

// userOf returns the token's unverified "sub" claim, or the token itself.
func userOf(token []byte) string {
	parts := bytes.Split(token, []byte("."))
	if len(parts) == 3 {
		if b, err := base64.RawURLEncoding.DecodeString(string(parts[1])); err == nil {
			var c struct {
				Sub string `json:"sub"`
			}
			if json.Unmarshal(b, &c) == nil && c.Sub != "" {
				return c.Sub
			}
		}
	}
	return string(token)
}

func established(transport, user string) []byte {
	msg := "WebSocket connected successfully"
	if transport == "sse" {
		msg = "SSE connected successfully"
	}
	b, _ := json.Marshal(map[string]string{"type": "connection_established", "message": msg, "user_id": user})
	return b
}

func (s *Server) add(c *conn) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	u := s.users[c.user]
	if u == nil {
		u = map[*conn]struct{}{}
		s.users[c.user] = u
	}
	u[c] = struct{}{}
	s.mu.Unlock()
}

func (s *Server) remove(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if u := s.users[c.user]; u != nil {
		delete(u, c)
		if len(u) == 0 {
			delete(s.users, c.user)
		}
	}
	s.mu.Unlock()
	c.close()
	if c.pw != nil {
		c.pw.Remove()
	}
}

func (c *conn) close() {
	c.dead.Store(true)
	if c.ws != nil {
		c.ws.Close()
	} else if c.raw != nil {
		c.raw.Close()
	}
}

func (s *Server) handleWS(ctx *fasthttp.RequestCtx) {
	user := userOf(ctx.QueryArgs().Peek("token"))
	raw := ctx.Conn() // the accepted socket, under fasthttp's hijack wrapper
	err := s.up.Upgrade(ctx, func(ws *websocket.Conn) {
		_ = ws.NetConn().SetDeadline(time.Time{})
		c := &conn{user: user, ws: ws}
		_ = ws.SetWriteDeadline(time.Now().Add(writeTimeout))
		if err := ws.WriteMessage(websocket.TextMessage, established("ws", user)); err != nil {
			ws.Close()
			return
		}
		if s.poll != nil {
			if _, ok := raw.(netpoll.Conn); ok {
				c = &conn{user: user, raw: raw, wsRaw: true}
			}
		}
		if c.wsRaw {
			s.serveParked(c, raw, func() { s.wsReady(c, raw) }, func() { s.wsReadLoop(c, raw) })
			return
		}
		s.add(c)
		defer s.remove(c)
		for {
			if _, _, err := ws.NextReader(); err != nil {
				return
			}
		}
	})
	if err != nil {
		s.log.Debug("floor: upgrade failed", "err", err)
	}
}

const sseHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: keep-alive\r\n\r\n"

func (s *Server) handleSSE(ctx *fasthttp.RequestCtx) {
	user := userOf(ctx.QueryArgs().Peek("token"))
	nc := ctx.Conn() // the accepted socket, not fasthttp's hijack wrapper
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(net.Conn) {
		_ = nc.SetDeadline(time.Now().Add(writeTimeout))
		first := append([]byte(sseHead), "data: "...)
		first = append(append(first, established("sse", user)...), "\n\n"...)
		if _, err := nc.Write(first); err != nil {
			return
		}
		_ = nc.SetDeadline(time.Time{})
		c := &conn{user: user, raw: nc}
		if s.poll != nil {
			s.serveParked(c, nc, func() { s.sseReady(c, nc) }, func() { s.sseReadLoop(c, nc) })
			return
		}
		s.add(c)
		defer s.remove(c)
		var b [64]byte
		for {
			if _, err := nc.Read(b[:]); err != nil {
				return
			}
		}
	})
}

func (s *Server) handlePublish(ctx *fasthttp.RequestCtx) {
	var body struct {
		Channel string          `json:"channel"`
		UserID  json.RawMessage `json:"user_id"`
		Data    json.RawMessage `json:"data"`
	}
	if !ctx.IsPost() || json.Unmarshal(ctx.PostBody(), &body) != nil || len(body.Data) == 0 {
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		ctx.SetBodyString(`{"error":"bad_request"}`)
		return
	}
	m := outMsg{data: append([]byte(nil), body.Data...)}
	if len(body.UserID) > 0 {
		var u string
		if json.Unmarshal(body.UserID, &u) != nil {
			u = string(body.UserID)
		}
		m.user = u
	} else if body.Channel != "broadcast" {
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		ctx.SetBodyString(`{"error":"only broadcast and user_id are supported"}`)
		return
	}
	select {
	case s.fan <- m:
	case <-time.After(writeTimeout):
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		return
	}
	off := s.seq.Add(1)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"cursor":"","offset":` + strconv.FormatUint(off, 10) + `}`)
}

// fanout writes published messages, one at a time (so every client sees
// them in publish order), each to its recipients in parallel over
// GOMAXPROCS goroutines.
func (s *Server) fanout() {
	defer s.wg.Done()
	var targets []*conn
	for {
		var m outMsg
		select {
		case <-s.done:
			return
		case m = <-s.fan:
		}
		targets = targets[:0]
		s.mu.RLock()
		if m.user == "" {
			for c := range s.conns {
				targets = append(targets, c)
			}
		} else {
			for c := range s.users[m.user] {
				targets = append(targets, c)
			}
		}
		s.mu.RUnlock()
		if len(targets) == 0 {
			continue
		}
		if s.opts.Coalesce > 0 {
			for _, c := range targets {
				s.enqueue(c, m.data)
			}
			continue
		}
		pm, err := websocket.NewPreparedMessage(websocket.TextMessage, m.data)
		if err != nil {
			s.log.Warn("floor: prepare message", "err", err)
			continue
		}
		sse := append(append([]byte("data: "), m.data...), "\n\n"...)
		var wsf []byte // the frame parked WebSockets get, written by hand
		if s.poll != nil {
			wsf = appendWSText(nil, m.data)
		}
		n := min(runtime.GOMAXPROCS(0), (len(targets)+63)/64)
		var wg sync.WaitGroup
		for w := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(targets); i += n {
					targets[i].write(pm, wsf, sse)
				}
			}()
		}
		wg.Wait()
	}
}

func (c *conn) write(pm *websocket.PreparedMessage, wsf, sse []byte) {
	if c.dead.Load() {
		return
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var err error
	if c.ws != nil {
		_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
		err = c.ws.WritePreparedMessage(pm)
	} else {
		_ = c.raw.SetWriteDeadline(time.Now().Add(writeTimeout))
		if c.wsRaw {
			_, err = c.raw.Write(wsf)
		} else {
			_, err = c.raw.Write(sse)
		}
	}
	if err != nil {
		c.close()
	}
}

// enqueue adds data to c's queue and hands c to a writer unless it is
// already waiting for one (coalescing mode).
func (s *Server) enqueue(c *conn, data []byte) {
	if c.dead.Load() {
		return
	}
	c.qmu.Lock()
	c.pending = append(c.pending, data)
	sched := !c.scheduled
	c.scheduled = true
	c.qmu.Unlock()
	if sched {
		select {
		case s.wq <- c:
		default:
			go s.flush(c) // more connections waiting than the queue holds
		}
	}
}

// writer flushes connections handed to it until Shutdown.
func (s *Server) writer() {
	for {
		select {
		case <-s.done:
			return
		case c := <-s.wq:
			s.flush(c)
		}
	}
}

// flush writes c's pending messages, up to Coalesce of them per write,
// until its queue is empty.
func (s *Server) flush(c *conn) {
	var batch [][]byte
	var buf []byte
	for {
		c.qmu.Lock()
		n := min(len(c.pending), s.opts.Coalesce)
		if n == 0 || c.dead.Load() {
			c.pending = nil
			c.scheduled = false
			c.qmu.Unlock()
			return
		}
		batch = append(batch[:0], c.pending[:n]...)
		rest := copy(c.pending, c.pending[n:])
		clear(c.pending[rest:])
		c.pending = c.pending[:rest]
		c.qmu.Unlock()
		buf = buf[:0]
		for _, d := range batch {
			if c.ws != nil || c.wsRaw {
				buf = appendWSText(buf, d)
			} else {
				buf = append(append(append(buf, "data: "...), d...), "\n\n"...)
			}
		}
		clear(batch)
		c.wmu.Lock()
		nc := c.raw
		if c.ws != nil {
			nc = c.ws.NetConn()
		}
		_ = nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := nc.Write(buf)
		c.wmu.Unlock()
		if err != nil {
			c.close()
		}
	}
}

// appendWSText appends one unmasked (server to client) WebSocket text
// frame carrying payload: frames written back to back leave in one write.
func appendWSText(b, payload []byte) []byte {
	b = append(b, 0x81) // FIN, text
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, payload...)
}

// serveParked adds c and parks its socket on the poller (netpoll mode):
// ready then runs whenever bytes or a hang-up arrive. A socket that cannot
// be parked is read by loop in this goroutine instead.
func (s *Server) serveParked(c *conn, nc net.Conn, ready, loop func()) {
	if sc, ok := nc.(netpoll.Conn); ok {
		if w, err := s.poll.Register(sc, ready); err == nil {
			c.pw = w // before add: remove finds it
		}
	}
	s.add(c)
	if c.pw != nil {
		if err := c.pw.Arm(); err == nil {
			return
		}
		c.pw.Remove()
	}
	loop()
}

// sseReady runs when a parked SSE socket is readable: an EventSource
// sends nothing, so this is the peer closing (or sending junk, read and
// dropped like the goroutine mode does).
func (s *Server) sseReady(c *conn, nc net.Conn) {
	var b [64]byte
	_ = nc.SetReadDeadline(time.Now().Add(writeTimeout))
	if _, err := nc.Read(b[:]); err != nil || c.pw.Arm() != nil {
		s.remove(c)
	}
}

// sseReadLoop reads an SSE socket that could not be parked until it ends.
func (s *Server) sseReadLoop(c *conn, nc net.Conn) {
	defer s.remove(c)
	var b [64]byte
	for {
		if _, err := nc.Read(b[:]); err != nil {
			return
		}
	}
}

// maxClientFrame bounds what a parked WebSocket keeps of an incomplete
// frame: clients of these paths send control frames and short messages.
const maxClientFrame = 64 << 10

// wsReadChunk is how much one wake-up reads; more pending bytes wake the
// connection again at once.
const wsReadChunk = 2048

// wsReady runs when a parked WebSocket is readable: it reads what arrived
// (wsRead) and parks the connection again, or ends it.
func (s *Server) wsReady(c *conn, nc net.Conn) {
	_ = nc.SetReadDeadline(time.Now().Add(writeTimeout))
	if s.wsRead(c, nc) && c.pw.Arm() != nil {
		s.remove(c)
	}
}

// wsReadLoop reads a hand-written WebSocket (wsRaw) that could not be
// parked, until it ends.
func (s *Server) wsReadLoop(c *conn, nc net.Conn) {
	for s.wsRead(c, nc) {
	}
}

// wsRead reads once from a hand-written WebSocket: it answers pings,
// closes on a close frame or EOF, drops data messages and keeps an
// incomplete frame's bytes for the next read. It returns false, having
// removed the connection, when the connection ended.
func (s *Server) wsRead(c *conn, nc net.Conn) bool {
	var b [wsReadChunk]byte
	n, err := nc.Read(b[:])
	if err != nil {
		s.remove(c)
		return false
	}
	data := b[:n]
	if len(c.part) > 0 {
		data = append(c.part, data...)
		c.part = nil
	}
	for len(data) > 0 {
		op, payload, size := wsFrame(data)
		if size < 0 {
			s.remove(c)
			return false
		}
		if size == 0 {
			break
		}
		data = data[size:]
		switch op {
		case 0x8: // close: echo it and end the connection
			c.writeControl(0x8, payload)
			s.remove(c)
			return false
		case 0x9: // ping
			c.writeControl(0xA, payload)
		}
	}
	if len(data) > 0 {
		c.part = bytes.Clone(data)
	}
	return true
}

// writeControl writes an unmasked control frame on a hand-written
// WebSocket.
func (c *conn) writeControl(op byte, payload []byte) {
	f := append([]byte{0x80 | op, byte(len(payload))}, payload...)
	c.wmu.Lock()
	_ = c.raw.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, _ = c.raw.Write(f)
	c.wmu.Unlock()
}

// wsFrame parses the client frame at the start of b and unmasks its
// payload in place; size is 0 when b does not yet hold the whole frame,
// -1 for a frame longer than maxClientFrame.
func wsFrame(b []byte) (op byte, payload []byte, size int) {
	if len(b) < 2 {
		return 0, nil, 0
	}
	op, n, h := b[0]&0x0f, uint64(b[1]&0x7f), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return 0, nil, 0
		}
		n, h = uint64(b[2])<<8|uint64(b[3]), 4
	case 127:
		if len(b) < 10 {
			return 0, nil, 0
		}
		n, h = 0, 10
		for _, x := range b[2:10] {
			n = n<<8 | uint64(x)
		}
	}
	if n > maxClientFrame {
		return 0, nil, -1
	}
	var mask []byte
	if b[1]&0x80 != 0 {
		if len(b) < h+4 {
			return 0, nil, 0
		}
		mask, h = b[h:h+4], h+4
	}
	if uint64(len(b)-h) < n {
		return 0, nil, 0
	}
	payload = b[h : h+int(n)]
	if mask != nil {
		for i := range payload {
			payload[i] ^= mask[i&3]
		}
	}
	return op, payload, h + int(n)
}
