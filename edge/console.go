package edge

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"

	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/buildinfo"
)

// The admin web console: a static page (/admin/) on the admin API. The page
// itself holds nothing secret and is served without the key; everything it
// shows comes from the API with the key in the X-Admin-Key header, which
// the page keeps in sessionStorage. A custom header cannot be sent
// cross-site without a CORS preflight, which Herald never grants, and no
// cookie is involved: another site cannot make the browser act with the key
// (CSRF). The page may not be framed and runs no inline script (CSP).
//
//	GET  /admin/                        the console page (and /admin/console.js)
//	GET  /admin/status                  every node: version, health, shards, ingest, counters
//	POST /admin/publish                 a test message, body as /api/publish
//	GET  /admin/history?channel=&limit= the newest messages of a channel

//go:embed static/admin.html
var consolePage []byte

//go:embed static/admin.js
var consoleJS []byte

const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// serveConsoleAsset serves the console's static files; it reports whether
// path was one.
func serveConsoleAsset(ctx *fasthttp.RequestCtx, path string) bool {
	var body []byte
	switch path {
	case "/admin/", "/admin", "/admin/index.html":
		ctx.SetContentType("text/html; charset=utf-8")
		body = consolePage
	case "/admin/console.js":
		ctx.SetContentType("text/javascript; charset=utf-8")
		body = consoleJS
	default:
		return false
	}
	h := &ctx.Response.Header
	h.Set("Content-Security-Policy", consoleCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	ctx.SetBody(body)
	return true
}

// nodeStatus is one node's answer to a status request.
type nodeStatus struct {
	Node        string               `json:"node"`
	Version     string               `json:"version"`
	Commit      string               `json:"commit"`
	Broker      string               `json:"broker"`
	Healthy     bool                 `json:"healthy"`
	Error       string               `json:"error,omitempty"`
	Draining    bool                 `json:"draining"`
	Shards      []fanout.ShardHealth `json:"shards,omitempty"`
	Ingest      *ingestStatus        `json:"ingest,omitempty"`
	Connections map[string]float64   `json:"connections"`
	Delivered   float64              `json:"delivered"`
	Published   float64              `json:"published"`
	// Latency is the publish→write histogram over both transports:
	// cumulative counts per upper bound (seconds, "+Inf" last).
	Latency []bucket `json:"latency"`
}

type bucket struct {
	LE    string `json:"le"`
	Count uint64 `json:"count"`
}

type ingestStatus struct {
	Groups    int    `json:"groups"`
	Received  uint64 `json:"received"`
	Published uint64 `json:"published"`
	Expired   uint64 `json:"expired"`
	Dropped   uint64 `json:"dropped"`
}

// localStatus describes this node for the console (the Server's answer to
// a status request on the control plane).
func (s *Server) localStatus() *nodeStatus {
	bi := buildinfo.Get()
	st := &nodeStatus{Node: s.node, Version: bi.Version, Commit: bi.Commit, Broker: s.cfg.Fanout.Broker,
		Healthy: true, Draining: s.life.draining.Load(), Connections: map[string]float64{"ws": 0, "sse": 0}}
	if hc := s.caps.health; hc != nil {
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := hc.Healthy(c); err != nil {
			st.Healthy, st.Error = false, err.Error()
		}
		cancel()
	}
	if rb := s.caps.shards; rb != nil {
		st.Shards = rb.ShardHealth()
	}
	if s.ingest != nil {
		is := s.ingest.Stats()
		st.Ingest = &ingestStatus{Groups: is.Groups, Received: is.Received, Published: is.Published, Expired: is.Expired, Dropped: is.Dropped}
	}
	families, err := s.metrics.Registry.Gather()
	if err != nil {
		s.log.Warn("console status: gathering metrics", "err", err)
	}
	latency := map[float64]uint64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "herald_connections":
				st.Connections[label(m, "transport")] += m.GetGauge().GetValue()
			case "herald_messages_delivered_total":
				st.Delivered += m.GetCounter().GetValue()
			case "herald_messages_published_total":
				if label(m, "outcome") == "new" {
					st.Published += m.GetCounter().GetValue()
				}
			case "herald_delivery_latency_seconds":
				for _, b := range m.GetHistogram().GetBucket() {
					latency[b.GetUpperBound()] += b.GetCumulativeCount()
				}
				latency[inf] += m.GetHistogram().GetSampleCount()
			}
		}
	}
	bounds := make([]float64, 0, len(latency))
	for b := range latency {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	for _, b := range bounds {
		le := "+Inf"
		if b != inf {
			le = strconv.FormatFloat(b, 'g', -1, 64)
		}
		st.Latency = append(st.Latency, bucket{LE: le, Count: latency[b]})
	}
	return st
}

const inf = 1e308 // sorts last; stands for the +Inf bucket

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// handleConsoleAPI serves the console's own endpoints; it reports whether
// path was one. The caller has checked the admin key.
func (a *adminAPI) handleConsoleAPI(ctx *fasthttp.RequestCtx, path string) bool {
	switch path {
	case "/admin/status":
		var nodes []*nodeStatus
		for _, r := range a.control.ask(controlMessage{Type: "status"}) {
			if r.Status != nil {
				nodes = append(nodes, r.Status)
			}
		}
		sort.Slice(nodes, func(i, j int) bool { return nodes[i].Node < nodes[j].Node })
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"self": a.node, "time": time.Now().UTC(), "nodes": orEmpty(nodes)})
	case "/admin/publish":
		if !ctx.IsPost() {
			writeError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "use POST")
			return true
		}
		if len(ctx.PostBody()) > a.maxBody {
			writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "body_too_large", "body exceeds api.max_body_bytes")
			return true
		}
		r, err := ParsePublish(ctx.PostBody())
		if err != nil {
			writeError(ctx, fasthttp.StatusBadRequest, "bad_request", err.Error())
			return true
		}
		res, err := a.publish.publishOne(ctx, r)
		if err != nil {
			a.publish.publishFailed(ctx, r.Channel, err)
			return true
		}
		a.log.Info("test message published from the admin console", "channel", r.Channel, "offset", res.Offset)
		writeJSON(ctx, fasthttp.StatusOK, res)
	case "/admin/history":
		ch := string(ctx.QueryArgs().Peek("channel"))
		if !fanout.ValidChannel(ch) {
			writeError(ctx, fasthttp.StatusBadRequest, "bad_request", "a valid channel is required")
			return true
		}
		limit, _ := strconv.Atoi(string(ctx.QueryArgs().Peek("limit")))
		if limit <= 0 || limit > 100 {
			limit = 20
		}
		a.consoleHistory(ctx, ch, limit)
	default:
		return false
	}
	return true
}

type historyEntry struct {
	Offset      uint64          `json:"offset"`
	PublishedAt *time.Time      `json:"published_at,omitempty"`
	Data        json.RawMessage `json:"data"`
}

// consoleHistory answers the newest limit messages of ch, newest first.
func (a *adminAPI) consoleHistory(ctx *fasthttp.RequestCtx, ch string, limit int) {
	hctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	top, err := a.broker.History(hctx, ch, fanout.Position{}, 0)
	if err != nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "broker_unavailable", err.Error())
		return
	}
	var msgs []*fanout.Message
	for n := limit; n >= 1 && top.Top.Offset > 0; n /= 2 {
		from := uint64(0)
		if top.Top.Offset > uint64(n) {
			from = top.Top.Offset - uint64(n)
		}
		res, err := a.broker.History(hctx, ch, fanout.Position{Epoch: top.Top.Epoch, Offset: from}, n)
		if errors.Is(err, fanout.ErrHistoryGone) {
			continue // older ones expired: ask for fewer
		}
		if err != nil {
			writeError(ctx, fasthttp.StatusServiceUnavailable, "broker_unavailable", err.Error())
			return
		}
		msgs = res.Messages
		break
	}
	out := make([]historyEntry, 0, len(msgs))
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		e := historyEntry{Offset: m.Pos.Offset, Data: json.RawMessage(m.Data)}
		if m.PublishedAt > 0 {
			t := time.Unix(0, m.PublishedAt).UTC()
			e.PublishedAt = &t
		}
		out = append(out, e)
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"channel": ch, "epoch": top.Top.Epoch, "top": top.Top.Offset, "messages": out})
}
