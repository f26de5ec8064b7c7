package edge

import (
	"context"
	"encoding/json"
	"strings"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/protocols"
)

// User notification preferences: a type filter per user, stored by the
// backend through the API and applied live to all that user's connections
// on every node. With the Redis broker they are stored in Redis (no expiry)
// so every node, including ones started later, applies them; with the
// memory broker they live in the node's memory.

// preferences caches users' filters on this node. With a broker that
// stores preferences (Redis) an entry lives while its user has connections
// on this node: it is created at the user's first connect (with what the
// store said) and dropped at the last disconnect, so the cache is bounded
// by the node's connected users, not by every user it has ever seen, and a
// returning user reads the store afresh. Without a store (the memory
// broker) the cache is the store: entries are kept.
type preferences struct {
	mu      sync.Mutex
	durable bool // the broker stores preferences: cache only connected users
	users   map[string]*prefEntry
}

// prefEntry is one user's cached filter and how many of the user's
// connections on this node hold it.
type prefEntry struct {
	f     *protocols.TypeFilter
	conns int
}

func (p *preferences) get(user string) (*protocols.TypeFilter, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.users[user]; e != nil {
		return e.f, true
	}
	return nil, false
}

// set records user's new filter. With a store, a user with no connection
// here is not cached: there is nothing to apply it to, and the next connect
// reads the store.
func (p *preferences) set(user string, f *protocols.TypeFilter) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.users[user]; e != nil {
		e.f = f
		return
	}
	if p.durable {
		return
	}
	if p.users == nil {
		p.users = make(map[string]*prefEntry)
	}
	p.users[user] = &prefEntry{f: f}
}

// hold counts a connection of user on this node; f is the filter it read
// at connect, cached when the user had no entry yet (a newer one set since
// is kept).
func (p *preferences) hold(user string, f *protocols.TypeFilter) {
	if !p.durable {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.users[user]
	if e == nil {
		if p.users == nil {
			p.users = make(map[string]*prefEntry)
		}
		e = &prefEntry{f: f}
		p.users[user] = e
	}
	e.conns++
}

// release ends what hold counted; the user's last connection here drops
// the entry.
func (p *preferences) release(user string) {
	if !p.durable {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.users[user]; e != nil {
		if e.conns--; e.conns <= 0 {
			delete(p.users, user)
		}
	}
}

// len is how many users are cached.
func (p *preferences) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.users)
}

// userPreferences returns user's filter, from this node's cache or the
// broker's store.
func (s *Server) userPreferences(ctx context.Context, user string) *protocols.TypeFilter {
	if f, ok := s.prefs.get(user); ok {
		return f
	}
	st := s.caps.prefs
	if st == nil {
		return nil
	}
	v, err := st.Preferences(ctx, user)
	if err != nil {
		s.log.Warn("preferences unavailable; connecting without them", "user", user, "err", err)
		return nil
	}
	f, err := protocols.ParseTypeFilter(v)
	if err != nil {
		s.log.Warn("stored preferences do not parse", "user", user, "err", err)
		return nil
	}
	return f
}

// preferencesSoon returns a channel that delivers user's filter: at once
// from this node's cache, or when the broker stores none; otherwise the
// broker's store is read in the background, so a connect's preferences
// read and its per-user lease (both Redis round trips, usually on the same
// shard) are in flight together instead of one after the other.
func (s *Server) preferencesSoon(user string) <-chan *protocols.TypeFilter {
	ch := make(chan *protocols.TypeFilter, 1)
	if f, ok := s.prefs.get(user); ok || s.caps.prefs == nil {
		ch <- f
		return ch
	}
	go func() { ch <- s.userPreferences(context.Background(), user) }()
	return ch
}

// applyPreferences updates the cache and every local connection of user.
func (s *Server) applyPreferences(user string, f *protocols.TypeFilter) {
	s.prefs.set(user, f)
	for _, sess := range s.hub.Sessions() {
		if sess.UserID() == user {
			sess.SetPreferences(f)
		}
	}
}

// handlePreferences serves GET and PUT /api/users/{id}/preferences with
// body {"types":["oracle_upload_*","-oracle_upload_progress"]}.
func (s *Server) handlePreferences(ctx *fasthttp.RequestCtx, user string) {
	if !s.authorizedAPI(ctx) {
		writeError(ctx, fasthttp.StatusUnauthorized, "unauthorized", "missing or wrong API key (X-API-Key header)")
		return
	}
	if !fanout.ValidChannel(fanout.UserChannel(user)) {
		writeError(ctx, fasthttp.StatusBadRequest, "bad_request", "invalid user id")
		return
	}
	switch {
	case ctx.IsGet():
		f := s.userPreferences(context.Background(), user)
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"user_id": user, "types": typesOf(f)})
	case ctx.IsPut():
		var body struct {
			Types []string `json:"types"`
		}
		if err := json.Unmarshal(ctx.PostBody(), &body); err != nil {
			writeError(ctx, fasthttp.StatusBadRequest, "bad_request", `body must be {"types":["pattern", "-pattern", ...]}`)
			return
		}
		f, err := protocols.NewTypeFilter(body.Types)
		if err != nil {
			writeError(ctx, fasthttp.StatusBadRequest, "bad_filter", err.Error())
			return
		}
		if st := s.caps.prefs; st != nil {
			if err := st.SetPreferences(context.Background(), user, f.String()); err != nil {
				writeError(ctx, fasthttp.StatusServiceUnavailable, "broker_unavailable", err.Error())
				return
			}
		}
		// Every node (this one included) applies them to live connections.
		s.control.send(controlAll, controlMessage{Type: "prefs", User: user, Reason: f.String()})
		s.applyPreferences(user, f)
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"user_id": user, "types": typesOf(f)})
	default:
		writeError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "use GET or PUT")
	}
}

func typesOf(f *protocols.TypeFilter) []string {
	if f == nil {
		return []string{}
	}
	return strings.Split(f.String(), ",")
}
