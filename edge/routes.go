package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// route dispatches a request. Paths match the Django Channels guide so
// existing clients work (the trailing slash is optional).
func (s *Server) route(ctx *fasthttp.RequestCtx) {
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
		if s.cfg.Admin.Listen != "" {
			writeError(ctx, fasthttp.StatusNotFound, "not_found", "metrics are served on admin.listen")
			return
		}
		s.metricsHandler(ctx)
	case "/":
		if s.cfg.Dev.Enabled {
			s.handleDemoPage(ctx)
			return
		}
		writeError(ctx, fasthttp.StatusNotFound, "not_found", "no such endpoint (the demo page needs dev.enabled)")
	case "/dev/token", "/dev/demo/upload":
		if !s.cfg.Dev.Enabled || !ctx.IsPost() {
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
		if bytes.HasPrefix(ctx.Path(), []byte("/admin/")) && s.cfg.Admin.Listen == "" {
			s.routeAdmin(ctx)
			return
		}
		writeError(ctx, fasthttp.StatusNotFound, "not_found", "no such endpoint")
	}
}

// metricsHandler serves the node's Prometheus metrics.
func (s *Server) metricsHandler(ctx *fasthttp.RequestCtx) {
	s.metricsOnce.Do(func() {
		s.metricsHTTP = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}))
	})
	s.metricsHTTP(ctx)
}

// handleReady reports whether the broker is usable, per shard when the
// broker can tell.
func (s *Server) handleReady(ctx *fasthttp.RequestCtx) {
	out := map[string]any{"status": "ok", "broker": s.cfg.Fanout.Broker}
	status := fasthttp.StatusOK
	if s.draining.Load() {
		out["status"], status = "draining", fasthttp.StatusServiceUnavailable
	}
	if hc := s.caps.health; hc != nil {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := hc.Healthy(c)
		cancel()
		if err != nil {
			out["status"], out["error"], status = "unavailable", err.Error(), fasthttp.StatusServiceUnavailable
		}
	}
	if rb := s.caps.shards; rb != nil {
		out["shards"] = rb.ShardHealth()
	}
	writeJSON(ctx, status, out)
}

// httpError answers requests fasthttp could not parse. A connection that
// never sent a byte before server.handshake_timeout is closed without a
// response, as nginx does: browsers open spare connections ahead of need,
// and one that later carries a request must not read a stale error.
func (s *Server) httpError(ctx *fasthttp.RequestCtx, err error) {
	if nothingRead(err) {
		s.log.Debug("idle connection closed", "reason", "nothing_sent", "remote", ctx.RemoteAddr().String())
		// fasthttp writes whatever this handler sets; closing the socket
		// first makes that write fail, so the client reads EOF.
		_ = ctx.Conn().Close()
		return
	}
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &small):
		s.log.Info("request refused", "reason", "header_too_large", "remote", ctx.RemoteAddr().String())
		writeError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "header_too_large", "request head larger than server.read_buffer_size")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "body_too_large", "request body too large")
	default:
		s.log.Debug("bad request", "err", err, "remote", ctx.RemoteAddr().String())
		writeError(ctx, fasthttp.StatusBadRequest, "bad_request", "malformed HTTP request")
	}
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
