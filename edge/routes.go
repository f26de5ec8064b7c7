package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/valyala/fasthttp"
)

// router is the HTTP layer of the main listener: the fasthttp server and
// the dispatch of each path to the part that serves it. It holds no state
// of its own beyond the server; connects, the publish, history and
// preferences API, readiness and the development pages are the node's,
// /admin/* the admin API's.
type router struct {
	http        *fasthttp.Server        // the main listener's server; its Handler is route
	node        *Server                 // serves everything but /admin/* and /metrics
	admin       *adminAPI               // /admin/* when adminOnMain
	metrics     fasthttp.RequestHandler // /metrics when adminOnMain
	adminOnMain bool                    // admin.listen is unset: /admin/* and /metrics are served here
	dev         bool                    // dev.enabled: the demo page and /dev/* endpoints
}

// route dispatches a request. Paths match the Django Channels guide so
// existing clients work (the trailing slash is optional).
func (r *router) route(ctx *fasthttp.RequestCtx) {
	s := r.node
	switch string(ctx.Path()) {
	case "/ws/notifications/", "/ws/notifications":
		s.handleWS(ctx)
	case "/sse/notifications/", "/sse/notifications":
		s.handleSSE(ctx)
	case "/api/publish":
		s.handlePublish(ctx)
	case "/api/publish/batch":
		s.handlePublishBatch(ctx)
	case "/api/history":
		s.handleHistory(ctx, false)
	case "/api/me/history":
		s.handleHistory(ctx, true)
	case "/herald.js":
		s.handleClientJS(ctx)
	case "/healthz":
		writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
	case "/readyz":
		s.handleReady(ctx)
	case "/metrics":
		if !r.adminOnMain {
			writeError(ctx, fasthttp.StatusNotFound, "not_found", "metrics are served on admin.listen")
			return
		}
		r.metrics(ctx)
	case "/":
		if r.dev {
			s.handleDemoPage(ctx)
			return
		}
		writeError(ctx, fasthttp.StatusNotFound, "not_found", "no such endpoint (the demo page needs dev.enabled)")
	case "/dev/token", "/dev/demo/upload":
		if !r.dev || !ctx.IsPost() {
			writeError(ctx, fasthttp.StatusNotFound, "not_found", "development endpoints need dev.enabled and POST")
			return
		}
		if string(ctx.Path()) == "/dev/token" {
			s.handleDevToken(ctx)
		} else {
			s.handleDemoUpload(ctx)
		}
	default:
		if isClientJSPath(ctx.Path()) {
			s.handleClientJS(ctx)
			return
		}
		if u, ok := strings.CutPrefix(string(ctx.Path()), "/api/users/"); ok {
			if user, ok := strings.CutSuffix(u, "/preferences"); ok && user != "" && !strings.Contains(user, "/") {
				s.handlePreferences(ctx, user)
				return
			}
		}
		if bytes.HasPrefix(ctx.Path(), []byte("/admin/")) && r.adminOnMain {
			r.admin.route(ctx)
			return
		}
		writeError(ctx, fasthttp.StatusNotFound, "not_found", "no such endpoint")
	}
}

// httpError answers requests fasthttp could not parse. A connection that
// never sent a byte before server.handshake_timeout is closed without a
// response, as nginx does: browsers open spare connections ahead of need,
// and one that later carries a request must not read a stale error.
func httpError(log *slog.Logger, ctx *fasthttp.RequestCtx, err error) {
	if nothingRead(err) {
		log.Debug("idle connection closed", "reason", "nothing_sent", "remote", ctx.RemoteAddr().String())
		// fasthttp writes whatever this handler sets; closing the socket
		// first makes that write fail, so the client reads EOF.
		_ = ctx.Conn().Close()
		return
	}
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &small):
		log.Info("request refused", "reason", "header_too_large", "remote", ctx.RemoteAddr().String())
		writeError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "header_too_large", "request head larger than server.read_buffer_size")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "body_too_large", "request body too large")
	case isTimeout(err):
		// Bytes arrived but not a whole head within the timeout: a
		// slowloris, or a node so loaded it could not read the head in
		// time. Either way the client should hear a timeout, not that its
		// request was malformed.
		log.Info("request refused", "reason", "request_timeout", "remote", ctx.RemoteAddr().String())
		writeError(ctx, fasthttp.StatusRequestTimeout, "request_timeout", "request head not received within server.handshake_timeout")
	default:
		// The parser's error quotes the request (tokens, cookies): it is
		// logged at debug only, through the redacting logger.
		log.Info("request refused", "reason", "bad_request", "remote", ctx.RemoteAddr().String())
		log.Debug("bad request", "err", err, "remote", ctx.RemoteAddr().String())
		writeError(ctx, fasthttp.StatusBadRequest, "bad_request", "malformed HTTP request")
	}
}

// isTimeout reports whether err is a read deadline expiring.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// nothingRead reports whether err ends a connection on which no request
// byte arrived: fasthttp hands the error handler the bare read error (a
// timeout) of its first one-byte peek; errors after bytes arrived are
// wrapped ("error when reading request headers: ...").
func nothingRead(err error) bool {
	var nr fasthttp.ErrNothingRead
	if errors.As(err, &nr) {
		return true
	}
	op, ok := err.(*net.OpError)
	return ok && op.Op == "read"
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, _ := json.Marshal(v)
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// writeError writes {"error": reason, "message": detail}.
func writeError(ctx *fasthttp.RequestCtx, status int, reason, detail string) {
	writeJSON(ctx, status, map[string]string{"error": reason, "message": detail})
}
