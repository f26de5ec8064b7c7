package edge

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/heraldrt/herald/edge/auth"
	"github.com/heraldrt/herald/fanout"
)

// The admin API (admin.key; on admin.listen when set, else on the main
// listener). Answers cover the whole cluster: a request fans out to every
// node over the control channels and gathers their replies.
//
//	GET  /admin/connections?user_id=42   a user's connections on every node
//	POST /admin/disconnect               {"user_id":"42","reason":"logout"}
//	GET  /admin/channels?channel=user:42 local subscribers and history top
//	GET  /admin/nodes                    the nodes that answer, with connection counts

// maxAdminReason bounds a disconnect reason: it travels to every node and
// into each client's disconnect event and close frame (truncated there to
// what a close frame carries).
const maxAdminReason = 256

// adminAPI serves /admin/* and the console: it authorizes with admin.key,
// asks every node through the control plane and answers from the gathered
// replies. It reads the broker (channel tops, history) and the hub
// (subscriber counts) but changes neither; a console test message goes
// through the node's publish API like any other.
type adminAPI struct {
	key      string                  // admin.key; empty disables the API
	node     string                  // this node's id, named in answers
	control  *controlPlane           // asks every node, gathers the replies
	broker   fanout.Broker           // channel tops and history (read only)
	hub      *Hub                    // local subscriber counts
	publish  publisher               // the console's test messages
	maxBody  int                     // api.max_body_bytes, for test messages
	metrics  fasthttp.RequestHandler // /metrics on admin.listen
	log      *slog.Logger
	timeout  time.Duration                   // server.handshake_timeout, the admin listener's read timeout
	listener atomic.Pointer[fasthttp.Server] // admin.listen's server once ServeAdmin runs
}

// publisher is the publish API as the console uses it.
type publisher interface {
	publishOne(ctx *fasthttp.RequestCtx, r PublishRequest) (publishResult, error)
	publishFailed(ctx *fasthttp.RequestCtx, channel string, err error)
}

func (a *adminAPI) authorized(ctx *fasthttp.RequestCtx) bool {
	key := ctx.Request.Header.Peek("X-Admin-Key")
	return a.key != "" && len(key) > 0 && subtle.ConstantTimeCompare(key, []byte(a.key)) == 1
}

// route serves /admin/* (and /metrics on a separate admin listener).
func (a *adminAPI) route(ctx *fasthttp.RequestCtx) {
	if string(ctx.Path()) == "/metrics" {
		a.metrics(ctx)
		return
	}
	if a.key == "" {
		writeError(ctx, fasthttp.StatusNotFound, "not_found", "the admin API is disabled (set admin.key)")
		return
	}
	if serveConsoleAsset(ctx, string(ctx.Path())) {
		return
	}
	if !a.authorized(ctx) {
		a.log.Info("admin request refused", "reason", "bad_admin_key", "remote", ctx.RemoteAddr().String())
		writeError(ctx, fasthttp.StatusUnauthorized, "unauthorized", "missing or wrong X-Admin-Key")
		return
	}
	if a.handleConsoleAPI(ctx, string(ctx.Path())) {
		return
	}
	switch string(ctx.Path()) {
	case "/admin/connections":
		user := string(ctx.QueryArgs().Peek("user_id"))
		if user == "" {
			writeError(ctx, fasthttp.StatusBadRequest, "bad_request", "user_id is required")
			return
		}
		if err := auth.CheckUserID(user); err != nil {
			writeError(ctx, fasthttp.StatusBadRequest, "bad_request", fmt.Sprintf("user_id %q: %v", user, err))
			return
		}
		var conns []connInfo
		for _, r := range a.control.ask(controlMessage{Type: "list", User: user}) {
			conns = append(conns, r.Conns...)
		}
		sort.Slice(conns, func(i, j int) bool { return conns[i].ConnectedAt.Before(conns[j].ConnectedAt) })
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"user_id": user, "connections": orEmpty(conns)})
	case "/admin/disconnect":
		if !ctx.IsPost() {
			writeError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "use POST")
			return
		}
		var body struct {
			UserID string `json:"user_id"`
			Reason string `json:"reason"`
		}
		if off := invalidUTF8(ctx.PostBody()); off >= 0 {
			writeError(ctx, fasthttp.StatusBadRequest, "bad_request", fmt.Sprintf("invalid UTF-8 at byte offset %d", off))
			return
		}
		if err := json.Unmarshal(ctx.PostBody(), &body); err != nil || body.UserID == "" {
			writeError(ctx, fasthttp.StatusBadRequest, "bad_request", `body must be {"user_id":"...","reason":"..."}`)
			return
		}
		if err := auth.CheckUserID(body.UserID); err != nil {
			writeError(ctx, fasthttp.StatusBadRequest, "bad_request", fmt.Sprintf("user_id %q: %v", body.UserID, err))
			return
		}
		if len(body.Reason) > maxAdminReason {
			writeError(ctx, fasthttp.StatusBadRequest, "bad_request", fmt.Sprintf("reason is %d bytes, the limit is %d (WebSocket close frames carry 123)", len(body.Reason), maxAdminReason))
			return
		}
		if body.Reason == "" {
			body.Reason = "disconnected_by_admin"
		}
		n, nodes := 0, 0
		for _, r := range a.control.ask(controlMessage{Type: "disconnect", User: body.UserID, Reason: body.Reason}) {
			n += r.Count
			nodes++
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"user_id": body.UserID, "disconnected": n, "nodes": nodes})
	case "/admin/channels":
		ch := string(ctx.QueryArgs().Peek("channel"))
		if !fanout.ValidChannel(ch) {
			writeError(ctx, fasthttp.StatusBadRequest, "bad_request", "a valid channel is required")
			return
		}
		hctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
		res, err := a.broker.History(hctx, ch, fanout.Position{}, 0)
		cancel()
		if err != nil {
			writeError(ctx, fasthttp.StatusServiceUnavailable, "broker_unavailable", err.Error())
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"channel": ch, "node": a.node,
			"local_subscribers": a.hub.Count(ch), "epoch": res.Top.Epoch, "offset": res.Top.Offset})
	case "/admin/nodes":
		type node struct {
			Node        string `json:"node"`
			Connections int    `json:"connections"`
		}
		var nodes []node
		for _, r := range a.control.ask(controlMessage{Type: "list"}) {
			nodes = append(nodes, node{Node: r.Node, Connections: len(r.Conns)})
		}
		sort.Slice(nodes, func(i, j int) bool { return nodes[i].Node < nodes[j].Node })
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"self": a.node, "nodes": nodes})
	default:
		writeError(ctx, fasthttp.StatusNotFound, "not_found", "no such admin endpoint")
	}
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// ServeAdmin serves the admin API and /metrics on ln (admin.listen) until
// Shutdown.
func (s *Server) ServeAdmin(ln net.Listener) error { return s.admin.serve(ln) }

// serve serves the admin API on ln until shutdown.
func (a *adminAPI) serve(ln net.Listener) error {
	srv := &fasthttp.Server{Handler: a.route, Name: "herald-admin", NoDefaultServerHeader: true,
		ReadTimeout: a.timeout, Logger: slogPrintf{a.log},
		ErrorHandler:          func(ctx *fasthttp.RequestCtx, err error) { httpError(a.log, ctx, err) },
		SecureErrorLogMessage: true}
	a.listener.Store(srv) // Shutdown may run concurrently
	err := srv.Serve(ln)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("serve admin %s: %w", ln.Addr(), err)
	}
	return nil
}

// shutdown stops the admin listener, if one was served.
func (a *adminAPI) shutdown(ctx context.Context) {
	if srv := a.listener.Load(); srv != nil {
		_ = srv.ShutdownWithContext(ctx)
	}
}
