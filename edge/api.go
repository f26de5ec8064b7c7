package edge

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/heraldrt/herald/edge/auth"
	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/protocols"
)

// PublishRequest is one message of the publish API: to a user
// ({"user_id":"42","data":{...}}) or to a channel
// ({"channel":"broadcast","data":{...}}).
type PublishRequest struct {
	// Channel is the target channel (exclusive with UserID).
	Channel string
	// Data is the payload, delivered byte for byte.
	Data json.RawMessage
	// IdempotencyKey makes repeats within the window publish once.
	IdempotencyKey string
}

// publishTimeout bounds one broker publish.
const publishTimeout = 5 * time.Second

// reservedPrefix marks Herald's own control channels; the publish API
// refuses it so that an API key cannot speak for the admin API.
const reservedPrefix = "herald."

// maxIdempotencyKey bounds idempotency keys.
const maxIdempotencyKey = 200

type publishBody struct {
	UserID         json.RawMessage `json:"user_id"`
	Channel        string          `json:"channel"`
	Data           json.RawMessage `json:"data"`
	IdempotencyKey string          `json:"idempotency_key"`
}

// ParsePublish decodes and validates one publish body. Its errors say what
// is wrong in words a backend developer can act on.
func ParsePublish(body []byte) (PublishRequest, error) {
	var b publishBody
	if err := strictUnmarshal(body, &b); err != nil {
		return PublishRequest{}, err
	}
	return b.validate()
}

// ParseBatch decodes and validates a batch body {"messages":[...]}.
func ParseBatch(body []byte, max int) ([]PublishRequest, error) {
	var b struct {
		Messages []publishBody `json:"messages"`
	}
	if err := strictUnmarshal(body, &b); err != nil {
		return nil, err
	}
	if len(b.Messages) == 0 {
		return nil, errors.New(`"messages" must be a non-empty array`)
	}
	if len(b.Messages) > max {
		return nil, fmt.Errorf(`"messages" has %d entries, the limit is %d`, len(b.Messages), max)
	}
	out := make([]PublishRequest, len(b.Messages))
	for i, m := range b.Messages {
		r, err := m.validate()
		if err != nil {
			return nil, fmt.Errorf("messages[%d]: %w", i, err)
		}
		out[i] = r
	}
	return out, nil
}

func strictUnmarshal(body []byte, v any) error {
	// encoding/json keeps a json.RawMessage's bytes as they are, invalid
	// UTF-8 included; browsers drop a WebSocket whose text frame carries
	// such bytes, so the whole body must be UTF-8.
	if off := invalidUTF8(body); off >= 0 {
		return fmt.Errorf("invalid JSON body: invalid UTF-8 at byte offset %d", off)
	}
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	// d.More is false before a stray ']' or '}': look at the bytes.
	if rest := bytes.TrimLeft(body[d.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return fmt.Errorf("invalid JSON body: trailing data after the object at byte offset %d", len(body)-len(rest))
	}
	return nil
}

func (b publishBody) validate() (PublishRequest, error) {
	var r PublishRequest
	hasUser := len(b.UserID) > 0 && !bytes.Equal(b.UserID, []byte("null"))
	switch {
	case hasUser && b.Channel != "":
		return r, errors.New(`give either "user_id" or "channel", not both`)
	case hasUser:
		id, err := parseUserID(b.UserID)
		if err != nil {
			return r, err
		}
		r.Channel = fanout.UserChannel(id)
	case b.Channel != "":
		r.Channel = b.Channel
	default:
		return r, errors.New(`missing "user_id" or "channel"`)
	}
	if !fanout.ValidChannel(r.Channel) {
		return r, fmt.Errorf("invalid channel %q: use 1-%d characters from A-Z a-z 0-9 _-.:@=+/", r.Channel, fanout.MaxChannelLen)
	}
	if strings.HasPrefix(r.Channel, reservedPrefix) {
		return r, fmt.Errorf("channel %q: the %q prefix is reserved for Herald's nodes", r.Channel, reservedPrefix)
	}
	if id, ok := strings.CutPrefix(r.Channel, fanout.UserChannelPrefix); ok && !hasUser {
		if err := auth.CheckUserID(id); err != nil {
			return r, fmt.Errorf("channel %q: user channels are \"user:<user id>\" and %q can never be a token's user id: %w", r.Channel, id, err)
		}
	}
	if len(b.Data) == 0 || bytes.Equal(b.Data, []byte("null")) {
		return r, errors.New(`missing "data"`)
	}
	if len(b.IdempotencyKey) > maxIdempotencyKey {
		return r, fmt.Errorf(`"idempotency_key" is longer than %d bytes`, maxIdempotencyKey)
	}
	r.Data = b.Data
	r.IdempotencyKey = b.IdempotencyKey
	return r, nil
}

// invalidUTF8 returns the offset of the first byte of b that is not part
// of valid UTF-8, or -1 when b is valid.
func invalidUTF8(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// parseUserID accepts "42" or 42 (Django ids are integers), and only ids a
// token's user claim could carry (auth.CheckUserID): a message to
// "user:4:2" would be accepted and delivered to nobody.
func parseUserID(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if s == "" {
			return "", errors.New(`"user_id" is empty`)
		}
		if err := auth.CheckUserID(s); err != nil {
			return "", fmt.Errorf(`"user_id" %q can never be a token's user id: %w`, s, err)
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		if i, err := n.Int64(); err == nil {
			return strconv.FormatInt(i, 10), nil
		}
	}
	return "", errors.New(`"user_id" must be a string or an integer`)
}

// authorizedAPI checks X-API-Key or "Authorization: apikey <key>" in
// constant time.
func (s *Server) authorizedAPI(ctx *fasthttp.RequestCtx) bool {
	key := ctx.Request.Header.Peek("X-API-Key")
	if len(key) == 0 {
		if h := ctx.Request.Header.Peek("Authorization"); len(h) > 7 && bytes.EqualFold(h[:7], []byte("apikey ")) {
			key = bytes.TrimSpace(h[7:])
		}
	}
	return len(key) > 0 && subtle.ConstantTimeCompare(key, []byte(s.cfg.API.Key)) == 1
}

type publishResult struct {
	Channel   string `json:"channel"`
	Cursor    string `json:"cursor"`
	Epoch     uint32 `json:"epoch"`
	Offset    uint64 `json:"offset"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

func (s *Server) publishOne(ctx *fasthttp.RequestCtx, r PublishRequest) (publishResult, error) {
	// Not ctx itself: fasthttp recycles RequestCtx (see open).
	pctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	parent, state := validTraceContext(ctx.Request.Header.Peek("traceparent"), ctx.Request.Header.Peek("tracestate"))
	opts := fanout.PublishOptions{IdempotencyKey: r.IdempotencyKey, TraceParent: parent}
	var span trace.Span
	if tr := s.tracing; tr != nil {
		// Continue the caller's trace (a traced Celery task links up) and
		// carry this Producer span's context with the message.
		carrier := propagation.MapCarrier{}
		if parent != "" {
			carrier["traceparent"] = parent
			if state != "" {
				carrier["tracestate"] = state
			}
		}
		pctx = tr.Propagator.Extract(pctx, carrier)
		pctx, span = tr.Tracer.Start(pctx, "herald.publish "+r.Channel, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("messaging.destination.name", r.Channel), attribute.Int("messaging.message.body.size", len(r.Data))))
		defer span.End()
		out := propagation.MapCarrier{}
		tr.Propagator.Inject(pctx, out)
		opts.TraceParent = out["traceparent"]
	}
	res, err := s.broker.Publish(pctx, r.Channel, r.Data, opts)
	if span != nil {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "publish failed")
		} else {
			span.SetAttributes(attribute.Int64("herald.offset", int64(res.Pos.Offset)), attribute.Bool("herald.duplicate", res.Duplicate))
		}
	}
	if err != nil {
		s.metrics.PublishErrors.Inc()
		return publishResult{}, err
	}
	if res.Duplicate {
		s.metrics.Published.WithLabelValues("duplicate").Inc()
	} else {
		s.metrics.Published.WithLabelValues("new").Inc()
	}
	return publishResult{
		Channel: r.Channel,
		Cursor:  protocols.Cursor{{Hash: protocols.ChannelHash(r.Channel), Pos: res.Pos}}.String(),
		Epoch:   res.Pos.Epoch, Offset: res.Pos.Offset, Duplicate: res.Duplicate,
	}, nil
}

// validTraceContext returns the W3C trace context of a publish request in
// its canonical form, or "" for a traceparent that is absent or not in the
// W3C format (it is then ignored, as the Trace Context spec asks). A
// tracestate is kept only with a valid traceparent and only when it parses
// as a W3C tracestate list. The values travel with the message to every
// node, so nothing the caller sends reaches the broker unchecked.
func validTraceContext(traceparent, tracestate []byte) (parent, state string) {
	if len(traceparent) == 0 || len(traceparent) > maxTraceHeader || len(tracestate) > maxTraceHeader {
		return "", ""
	}
	in := propagation.MapCarrier{"traceparent": string(traceparent)}
	if len(tracestate) > 0 {
		in["tracestate"] = string(tracestate)
	}
	// The OTel propagator implements the W3C parsing rules (hex case,
	// all-zero ids, version ff, field lengths, tracestate keys and values).
	var tc propagation.TraceContext
	sc := trace.SpanContextFromContext(tc.Extract(context.Background(), in))
	if !sc.IsValid() {
		return "", ""
	}
	out := propagation.MapCarrier{}
	tc.Inject(trace.ContextWithRemoteSpanContext(context.Background(), sc), out)
	return out["traceparent"], out["tracestate"]
}

// maxTraceHeader bounds traceparent and tracestate (the W3C spec lets
// vendors truncate tracestate past 512 bytes).
const maxTraceHeader = 512

// apiGuard checks method, key and body size; it writes the error and
// returns false when the request must not proceed.
func (s *Server) apiGuard(ctx *fasthttp.RequestCtx) bool {
	if !ctx.IsPost() {
		writeError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "use POST")
		return false
	}
	if !s.authorizedAPI(ctx) {
		s.log.Info("publish refused", "reason", "bad_api_key", "remote", ctx.RemoteAddr().String())
		writeError(ctx, fasthttp.StatusUnauthorized, "unauthorized", "missing or wrong API key (X-API-Key header)")
		return false
	}
	if len(ctx.PostBody()) > s.cfg.API.MaxBodyBytes {
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("body exceeds %d bytes", s.cfg.API.MaxBodyBytes))
		return false
	}
	return true
}

// handlePublish serves POST /api/publish.
func (s *Server) handlePublish(ctx *fasthttp.RequestCtx) {
	if !s.apiGuard(ctx) {
		return
	}
	r, err := ParsePublish(ctx.PostBody())
	if err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, "bad_request", err.Error())
		return
	}
	res, err := s.publishOne(ctx, r)
	if err != nil {
		s.publishFailed(ctx, r.Channel, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, res)
}

// handlePublishBatch serves POST /api/publish/batch. The whole batch is
// validated before anything is published; messages are published in order.
func (s *Server) handlePublishBatch(ctx *fasthttp.RequestCtx) {
	if !s.apiGuard(ctx) {
		return
	}
	rs, err := ParseBatch(ctx.PostBody(), s.cfg.API.MaxBatch)
	if err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, "bad_request", err.Error())
		return
	}
	out := struct {
		Results []publishResult `json:"results"`
	}{Results: make([]publishResult, 0, len(rs))}
	for i, r := range rs {
		res, err := s.publishOne(ctx, r)
		if err != nil {
			s.publishFailed(ctx, r.Channel, fmt.Errorf("messages[%d] (earlier ones were published): %w", i, err))
			return
		}
		out.Results = append(out.Results, res)
	}
	writeJSON(ctx, fasthttp.StatusOK, out)
}

func (s *Server) publishFailed(ctx *fasthttp.RequestCtx, channel string, err error) {
	status := fasthttp.StatusServiceUnavailable
	if errors.Is(err, fanout.ErrInvalidChannel) {
		status = fasthttp.StatusBadRequest
	}
	s.log.Warn("publish failed", "channel", channel, "err", err)
	writeError(ctx, status, "publish_failed", err.Error())
}
