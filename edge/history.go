package edge

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/heraldrt/herald/edge/auth"
	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/protocols"
)

// The history API lists a user's past messages, newest first, from the
// broker's retained history (history.size and history.ttl per channel; the
// Redis streams with the Redis broker). It is a recent-activity feed, not an
// archive: what must be kept longer belongs in the application's database.
//
//	GET /api/history?user_id=42&limit=50&before=<next>   (API key)
//	GET /api/me/history?limit=50&before=<next>            (the user's own token)

const (
	defaultHistoryLimit = 50
	maxHistoryLimit     = 500
)

type historyItem struct {
	Channel     string          `json:"channel"`
	Epoch       uint32          `json:"epoch"`
	Offset      uint64          `json:"offset"`
	PublishedAt time.Time       `json:"published_at"`
	Data        json.RawMessage `json:"data"`
}

func (s *Server) handleHistory(ctx *fasthttp.RequestCtx, me bool) {
	if !ctx.IsGet() {
		writeError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		return
	}
	var channels []string
	if me {
		claims, _, err := s.live.verifier().Authenticate(ctx)
		if err != nil {
			reason := "unauthorized"
			var ae *auth.Error
			if errors.As(err, &ae) {
				reason = ae.Reason
			}
			writeError(ctx, fasthttp.StatusUnauthorized, reason, err.Error())
			return
		}
		channels = channelsFor(claims)
	} else {
		if !s.authorizedAPI(ctx) {
			writeError(ctx, fasthttp.StatusUnauthorized, "unauthorized", "missing or wrong API key (X-API-Key header)")
			return
		}
		user := string(ctx.QueryArgs().Peek("user_id"))
		if user == "" || !fanout.ValidChannel(fanout.UserChannel(user)) {
			writeError(ctx, fasthttp.StatusBadRequest, "bad_request", "a valid user_id is required")
			return
		}
		channels = []string{fanout.UserChannel(user), broadcastChannel}
	}
	limit := defaultHistoryLimit
	if v := ctx.QueryArgs().GetUintOrZero("limit"); v > 0 {
		limit = min(v, maxHistoryLimit)
	}
	before, err := protocols.ParseCursor(string(ctx.QueryArgs().Peek("before")))
	if err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, "bad_cursor", err.Error())
		return
	}
	rr := s.caps.recent
	if rr == nil {
		writeError(ctx, fasthttp.StatusNotImplemented, "not_supported", "this broker cannot list history")
		return
	}
	hctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	var all []*fanout.Message
	for _, ch := range channels {
		var b uint64
		if p, ok := before.Lookup(protocols.ChannelHash(ch)); ok {
			b = p.Offset
			if b == 0 {
				continue // this channel is exhausted
			}
		}
		msgs, err := rr.Recent(hctx, ch, b, limit)
		if err != nil {
			writeError(ctx, fasthttp.StatusServiceUnavailable, "broker_unavailable", err.Error())
			return
		}
		all = append(all, msgs...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].PublishedAt > all[j].PublishedAt })
	more := len(all) > limit
	if more {
		all = all[:limit]
	}
	// The next page continues each channel below the oldest message this
	// page returned from it; channels that returned nothing keep their
	// place.
	next := protocols.Cursor(append([]protocols.CursorEntry(nil), before...))
	set := func(ch string, pos fanout.Position) {
		h := protocols.ChannelHash(ch)
		for i := range next {
			if next[i].Hash == h {
				next[i].Pos = pos
				return
			}
		}
		next = append(next, protocols.CursorEntry{Hash: h, Pos: pos})
	}
	items := make([]historyItem, len(all))
	for i, m := range all {
		items[i] = historyItem{Channel: m.Channel, Epoch: m.Pos.Epoch, Offset: m.Pos.Offset,
			PublishedAt: time.Unix(0, m.PublishedAt).UTC(), Data: m.Data}
		set(m.Channel, m.Pos)
	}
	out := map[string]any{"messages": items, "next": ""}
	if more || len(all) == limit {
		out["next"] = next.String()
	}
	writeJSON(ctx, fasthttp.StatusOK, out)
}
