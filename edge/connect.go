package edge

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"github.com/heraldrt/herald/edge/auth"
	"github.com/heraldrt/herald/edge/edgeconf"
	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/protocols"
)

// envelopeSubprotocol selects the envelope format on WebSocket.
const envelopeSubprotocol = "herald.v1"

// broadcastChannel is received by every connection.
const broadcastChannel = "broadcast"

// attachTimeout bounds the time between accepting a connection and the
// hijacked socket reaching its session; a session not attached by then
// (the client vanished during the handshake) is dropped.
const attachTimeout = 10 * time.Second

// connectRequest is what both transports learn from an accepted request.
type connectRequest struct {
	ip     string
	filter *protocols.TypeFilter
	claims auth.Claims
	since  protocols.Cursor
	origin string
}

// admit authenticates a connect request and parses its cursor. It writes
// the error response and returns false when the request is refused.
func (s *Server) admit(ctx *fasthttp.RequestCtx, transport protocols.TransportKind, sinceParam []byte) (connectRequest, bool) {
	var req connectRequest
	if s.life.draining.Load() {
		s.reject(ctx, fasthttp.StatusServiceUnavailable, transport, "shutting_down", "server is shutting down, reconnect")
		return req, false
	}
	origin := string(ctx.Request.Header.Peek("Origin"))
	if !s.originAllowed(ctx, origin) {
		s.reject(ctx, fasthttp.StatusForbidden, transport, "origin_not_allowed", "origin "+origin+" is not allowed")
		return req, false
	}
	req.ip = s.adm.clientIP(ctx)
	if r := s.adm.enter(req.ip, time.Now()); r != nil {
		s.refuse(ctx, transport, r)
		return req, false
	}
	ok := false
	defer func() {
		if !ok {
			s.adm.leave(req.ip)
		}
	}()
	claims, _, err := s.live.verifier().Authenticate(ctx)
	if err != nil && s.backend != nil {
		// No JWT at all: ask the backend about the session cookie. A
		// present but bad token is still refused as such.
		var ae *auth.Error
		if errors.As(err, &ae) && ae.Reason == auth.ReasonMissingToken {
			claims, err = s.backend.Check(ctx)
		}
	}
	if err != nil {
		reason := "unauthorized"
		var ae *auth.Error
		if errors.As(err, &ae) {
			reason = ae.Reason
		}
		s.reject(ctx, fasthttp.StatusUnauthorized, transport, reason, err.Error())
		return req, false
	}
	cur, err := protocols.ParseCursor(string(sinceParam))
	if err != nil {
		s.reject(ctx, fasthttp.StatusBadRequest, transport, "bad_cursor", err.Error())
		return req, false
	}
	req.filter, err = protocols.ParseTypeFilter(string(ctx.QueryArgs().Peek("types")))
	if err != nil {
		s.reject(ctx, fasthttp.StatusBadRequest, transport, "bad_filter", err.Error())
		return req, false
	}
	req.claims, req.since, req.origin = claims, cur, origin
	ok = true
	return req, true
}

// admissionSlot waits (up to server.handshake_timeout) until the node
// admits fewer connects than its bound at once; a connect that waited that
// long is refused with 503 node_busy and Retry-After.
func (s *Server) admissionSlot(ctx *fasthttp.RequestCtx, transport protocols.TransportKind) bool {
	if s.adm.slot(s.live.config().Server.HandshakeTimeout) {
		return true
	}
	s.refuse(ctx, transport, &refusal{status: fasthttp.StatusServiceUnavailable, reason: "node_busy",
		detail: "too many connects in progress on this node; retry", retryAfter: time.Second})
	return false
}

// refuse answers an admission refusal, with Retry-After when known.
func (s *Server) refuse(ctx *fasthttp.RequestCtx, transport protocols.TransportKind, r *refusal) {
	if r.retryAfter > 0 {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(int(math.Ceil(r.retryAfter.Seconds()))))
	}
	s.reject(ctx, r.status, transport, r.reason, r.detail)
}

// reject answers a refused connect with a JSON error and logs why. An
// event stream's refusal is readable by the page's script whatever its
// origin (CORS), so herald.js can tell the app why (origin_not_allowed,
// token_expired, ...): EventSource itself hides the status.
func (s *Server) reject(ctx *fasthttp.RequestCtx, status int, transport protocols.TransportKind, reason, detail string) {
	s.metrics.Rejections.WithLabelValues(reason).Inc()
	if transport == protocols.KindSSE {
		if o := ctx.Request.Header.Peek("Origin"); len(o) > 0 {
			// Safe with credentials: the Origin check comes before
			// authentication, so a page of a refused origin only ever
			// learns origin_not_allowed.
			ctx.Response.Header.SetBytesV("Access-Control-Allow-Origin", o)
			ctx.Response.Header.Set("Access-Control-Allow-Credentials", "true")
			ctx.Response.Header.Set("Vary", "Origin")
		}
	}
	// A refusal that is the node's fault (5xx: shutting down, full, Redis
	// unavailable) is logged at warn, so a node run at log.level warn
	// still says why it turned clients away; the client's own mistakes
	// (401, 403, 429, 400) stay at info.
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "connection refused", "transport", transport.String(), "status", status, "reason", reason,
		"detail", detail, "remote", ctx.RemoteAddr().String())
	writeError(ctx, status, reason, detail)
}

// originAllowed applies server.allowed_origins: no Origin (not a browser),
// the request's own origin, a configured origin, or a configured loopback
// origin with a port wildcard ("http://localhost:*" allows
// http://localhost:3000, :5173, ...; only localhost, 127.0.0.1 and [::1]
// take wildcards, see edgeconf.Server.Validate). Scheme, host and port are compared
// (default ports made explicit): https://host is not http://host.
func (s *Server) originAllowed(ctx *fasthttp.RequestCtx, origin string) bool {
	orig := s.live.origins.Load()
	if origin == "" || orig.any {
		return true
	}
	n, ok := normalOrigin(origin)
	if !ok {
		return false
	}
	if orig.set[n] {
		return true
	}
	if u, err := url.Parse(origin); err == nil && u.Port() != "" && edgeconf.LoopbackHost(u.Hostname()) {
		if orig.set[strings.TrimSuffix(n, ":"+u.Port())+":*"] {
			return true
		}
	}
	own, ok := normalOrigin(s.requestScheme(ctx) + "://" + string(ctx.Host()))
	return ok && n == own
}

// requestScheme is the scheme the client used: https when Herald serves
// TLS, else http, or X-Forwarded-Proto when a trusted proxy (limits.
// trusted_proxies) terminated TLS in front of Herald.
func (s *Server) requestScheme(ctx *fasthttp.RequestCtx) string {
	if ctx.IsTLS() {
		return "https"
	}
	if p := strings.ToLower(strings.TrimSpace(string(ctx.Request.Header.Peek("X-Forwarded-Proto")))); (p == "https" || p == "http") && s.adm.isTrusted(ctx.RemoteIP()) {
		return p
	}
	return "http"
}

// normalOrigin returns origin as "scheme://host:port" in lower case with the
// default port written out, or false when it is not an origin.
func normalOrigin(origin string) (string, bool) {
	u, err := url.Parse(strings.TrimRight(origin, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "http", "ws":
			port = "80"
		case "https", "wss":
			port = "443"
		}
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host + ":" + port, true
}

// channelsFor returns the channels a user's connection receives: its user
// channel, broadcast, and those its token grants, without repeats.
func channelsFor(c auth.Claims) []string {
	chans := make([]string, 0, 2+len(c.Channels))
	chans = append(chans, fanout.UserChannel(c.UserID), broadcastChannel)
	for _, ch := range c.Channels {
		if strings.HasPrefix(ch, reservedPrefix) {
			continue // node control channels are never granted to clients
		}
		dup := false
		for _, have := range chans {
			if have == ch {
				dup = true
				break
			}
		}
		if !dup {
			chans = append(chans, ch)
		}
	}
	return chans
}

// open creates, registers and resumes a session. On failure it has written
// a 503 and cleaned up.
func (s *Server) open(ctx *fasthttp.RequestCtx, req connectRequest, tr protocols.Transport) (*protocols.Session, bool) {
	sess := protocols.NewSession(s.live.env.Load(), protocols.Options{
		ID:        s.life.nextID.Add(1),
		UserID:    req.claims.UserID,
		Channels:  channelsFor(req.claims),
		Since:     req.since,
		ExpiresAt: req.claims.ExpiresAt,
		Transport: tr,
		Remote:    req.ip,
		Filter:    req.filter,
	})
	prefs := s.preferencesSoon(req.claims.UserID) // read while the lease is acquired
	actx, acancel := context.WithTimeout(context.Background(), s.live.env.Load().Config.HistoryTimeout)
	victim, remote, r := s.adm.acquireUser(actx, sess)
	acancel()
	filter := <-prefs
	sess.SetPreferences(filter)
	if remote != "" {
		go s.control.evictRemote(sess.UserID(), remote)
	}
	if r != nil {
		s.adm.leave(req.ip)
		s.refuse(ctx, tr.Kind(), r)
		return nil, false
	}
	if victim != nil {
		s.log.Info("evicting oldest connection", "user", victim.UserID(), "session", victim.ID(), "limit", s.adm.cfg().PerUser)
		victim.Close(protocols.CloseReplaced)
	}
	s.hub.Add(sess)
	s.prefs.hold(sess.UserID(), filter)
	// fasthttp recycles its RequestCtx, so it must not become the parent of
	// a context that may outlive the handler: use a fresh one.
	bctx, bcancel := context.WithTimeout(context.Background(), s.live.env.Load().Config.HistoryTimeout)
	defer bcancel()
	if err := s.broker.Subscribe(bctx, sess.Channels()...); err != nil {
		s.hub.Remove(sess)
		s.prefs.release(sess.UserID())
		s.adm.releaseUser(sess)
		s.adm.leave(req.ip)
		s.reject(ctx, fasthttp.StatusServiceUnavailable, tr.Kind(), "broker_unavailable", err.Error())
		return nil, false
	}
	if s.ingest != nil {
		for _, ch := range sess.Channels() {
			s.ingest.Interest(ch)
		}
	}
	err := sess.Resume(bctx)
	if err != nil {
		s.drop(sess)
		s.reject(ctx, fasthttp.StatusServiceUnavailable, tr.Kind(), "history_unavailable", err.Error())
		return nil, false
	}
	s.life.running.Add(1)
	// If the hijack never happens (the client left mid-handshake), the
	// session must not linger in the hub.
	time.AfterFunc(attachTimeout, func() {
		if !sess.Attached() {
			sess.Close(protocols.CloseGoingAway)
			s.end(sess)
		}
	})
	return sess, true
}

// drop unregisters a subscribed session and releases its admission slots.
func (s *Server) drop(sess *protocols.Session) {
	s.hub.Remove(sess)
	s.prefs.release(sess.UserID())
	_ = s.broker.Unsubscribe(context.Background(), sess.Channels()...)
	if s.ingest != nil {
		for _, ch := range sess.Channels() {
			s.ingest.Release(ch)
		}
	}
	s.adm.releaseUser(sess)
	s.adm.leave(sess.Remote())
}

// end unregisters a session whose read loop ended. It runs once per
// session.
func (s *Server) end(sess *protocols.Session) {
	if !sess.MarkEnded() {
		return
	}
	s.drop(sess)
	s.life.running.Done()
	tr := sess.Transport().Name()
	reason := sess.CloseReason().Reason
	if reason == "" {
		reason = "client_closed"
	}
	if sess.Attached() {
		s.metrics.Connections.WithLabelValues(tr).Dec()
	}
	s.metrics.Disconnects.WithLabelValues(tr, reason).Inc()
	if r := sess.CloseReason(); r.Reason != "" {
		s.log.Info("disconnected", "transport", sess.Transport().Name(), "user", sess.UserID(),
			"session", sess.ID(), "reason", r.Reason)
	} else {
		s.log.Debug("disconnected", "transport", sess.Transport().Name(), "user", sess.UserID(),
			"session", sess.ID(), "reason", "client_closed")
	}
}

// handleWS serves GET /ws/notifications/.
func (s *Server) handleWS(ctx *fasthttp.RequestCtx) {
	if !websocket.FastHTTPIsWebSocketUpgrade(ctx) {
		writeError(ctx, fasthttp.StatusBadRequest, "not_websocket", "this endpoint needs a WebSocket upgrade; use /sse/notifications/ for an event stream")
		return
	}
	if !s.admissionSlot(ctx, protocols.KindWS) {
		return
	}
	defer s.adm.unslot()
	req, ok := s.admit(ctx, protocols.KindWS, ctx.QueryArgs().Peek("since"))
	if !ok {
		return
	}
	format := protocols.WSRaw
	if bytes.Equal(ctx.QueryArgs().Peek("format"), []byte("envelope")) || wantsSubprotocol(ctx, envelopeSubprotocol) {
		format = protocols.WSEnvelope
	}
	sess, ok := s.open(ctx, req, protocols.WSTransport{Format: format})
	if !ok {
		return
	}
	raw := ctx.Conn() // the accepted socket, under fasthttp's hijack wrapper
	err := s.upgrader.Upgrade(ctx, func(c *websocket.Conn) {
		// Only the socket is kept: the session reads and writes it itself,
		// so the library's Conn and its buffers are garbage from here on.
		conn := c.UnderlyingConn()
		if s.live.env.Load().Poller != nil {
			conn = detachHijacked(conn, raw)
		}
		sess.Attach(conn)
		s.metrics.Connections.WithLabelValues("ws").Inc()
		s.metrics.Connects.WithLabelValues("ws").Inc()
		s.log.Debug("connected", "transport", "ws", "user", sess.UserID(), "session", sess.ID(), "remote", ctx.RemoteAddr().String())
		// Return at once so fasthttp releases the request context; the
		// session's reader (a goroutine, or the poller when the socket is
		// parked) is all this connection keeps.
		sess.Run(conn, func() { s.end(sess) })
	})
	if err != nil {
		sess.Close(protocols.CloseProtocolError)
		s.end(sess)
		s.log.Info("connection refused", "transport", "ws", "reason", "bad_handshake", "detail", err.Error())
	}
}

// wantsSubprotocol reports whether the client offered subprotocol want.
func wantsSubprotocol(ctx *fasthttp.RequestCtx, want string) bool {
	for _, p := range bytes.Split(ctx.Request.Header.Peek("Sec-WebSocket-Protocol"), []byte(",")) {
		if string(bytes.TrimSpace(p)) == want {
			return true
		}
	}
	return false
}

// handleSSE serves GET /sse/notifications/. The response head is written on
// the hijacked socket, after which the connection is a plain session like a
// WebSocket.
func (s *Server) handleSSE(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() {
		writeError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		return
	}
	since := ctx.Request.Header.Peek("Last-Event-ID")
	if len(since) == 0 {
		since = ctx.QueryArgs().Peek("since")
	}
	if !s.admissionSlot(ctx, protocols.KindSSE) {
		return
	}
	defer s.adm.unslot()
	req, ok := s.admit(ctx, protocols.KindSSE, since)
	if !ok {
		return
	}
	named := bytes.Equal(ctx.QueryArgs().Peek("events"), []byte("named"))
	sess, ok := s.open(ctx, req, protocols.SSETransport{Named: named})
	if !ok {
		return
	}
	var extra [][2]string
	if req.origin != "" {
		extra = append(extra, [2]string{"Access-Control-Allow-Origin", req.origin},
			[2]string{"Access-Control-Allow-Credentials", "true"}, [2]string{"Vary", "Origin"})
	}
	head := protocols.AppendSSEHead(nil, s.live.env.Load().Config.SSERetry, extra)
	raw := ctx.Conn()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(net.Conn) {
		// Write and read the accepted socket itself: fasthttp's hijack
		// wrapper and its read buffer are then garbage, and an SSE
		// connection costs its reader goroutine (none when parked) and
		// little else.
		_ = raw.SetWriteDeadline(time.Now().Add(s.live.env.Load().Config.WriteTimeout))
		if _, err := raw.Write(head); err != nil {
			sess.Close(protocols.CloseGoingAway)
			raw.Close()
			s.end(sess)
			return
		}
		sess.Attach(raw)
		s.metrics.Connections.WithLabelValues("sse").Inc()
		s.metrics.Connects.WithLabelValues("sse").Inc()
		s.log.Debug("connected", "transport", "sse", "user", sess.UserID(), "session", sess.ID())
		sess.Run(raw, func() { s.end(sess) })
	})
}

// detachHijacked returns the accepted socket raw in place of hj, fasthttp's
// hijack wrapper around it, when the wrapper's read buffer holds nothing:
// the session then reads the socket itself, which the poller can watch,
// and the wrapper's buffer is garbage. A client must wait for the 101
// before sending frames, but one that did not has its early bytes kept:
// the wrapper is returned, to be read by a goroutine as without parking.
func detachHijacked(hj, raw net.Conn) net.Conn {
	if raw == nil || hj == raw {
		return hj
	}
	// An expired deadline makes the read return what the wrapper has
	// buffered, or fail at once without touching the socket.
	_ = raw.SetReadDeadline(time.Unix(1, 0))
	var b [1]byte
	n, _ := hj.Read(b[:])
	_ = raw.SetReadDeadline(time.Time{})
	if n > 0 {
		return &prefixedConn{Conn: hj, prefix: b[:n]}
	}
	return raw
}

// prefixedConn reads prefix before its connection: a byte taken from
// a hijack wrapper while checking it for buffered data.
type prefixedConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixedConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
