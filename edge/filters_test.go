package edge

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/redistest"
)

// TestTypeFiltersKeepCursorsExact: ?types= on WS and SSE delivers only the
// chosen types, and a resume from the last cursor after filtered messages
// replays nothing twice.
func TestTypeFiltersKeepCursorsExact(t *testing.T) {
	ts := startServer(t, nil)
	tok := token(t, "f", time.Hour)
	filter := "oracle_upload_*,-oracle_upload_progress"
	ws := ts.mustWS(t, q("token", tok, "types", filter, "format", "envelope"))
	readWS(t, ws)
	sse := ts.mustSSE(t, q("token", tok, "types", filter), "")
	sse.next(t)
	for _, p := range guideFlow(9) {
		ts.publishTo(t, "f", p)
	}
	flow := guideFlow(9)
	var last string
	for _, want := range []string{flow[0], flow[6]} {
		ev := sse.next(t)
		if ev.Data != want {
			t.Fatalf("sse got %s, want %s", ev.Data, want)
		}
		last = ev.ID
		env := readWSJSON(t, ws)
		if !strings.Contains(want, env["data"].(map[string]any)["type"].(string)) {
			t.Fatalf("ws got %v", env)
		}
	}
	// Resuming after the filtered progress messages replays nothing.
	sse.resp.Body.Close()
	ts.publishTo(t, "f", `{"type":"oracle_upload_started","transaction_id":10}`)
	again := ts.mustSSE(t, q("token", tok, "types", filter), last)
	again.next(t)
	if ev := again.next(t); ev.Data != `{"type":"oracle_upload_started","transaction_id":10}` {
		t.Fatalf("resume with filter got %s", ev.Data)
	}
	_, resp, _ := ts.openSSE(t, q("token", tok, "types", "["), "")
	if resp == nil || resp.StatusCode != 400 {
		t.Fatalf("bad filter: %v", resp)
	}
}

// TestPreferencesLiveAcrossNodes: preferences stored through the API on one
// node apply at once to the user's connections on the other node, and to
// connections opened later.
func TestPreferencesLiveAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	nodes := redisNodes(t, 2, []string{srv.Addr()}, "prefs:")
	ws := nodes[1].mustWS(t, q("token", token(t, "p", time.Hour)))
	readWS(t, ws)
	put := func(body string) int {
		req, _ := http.NewRequest("PUT", "http://"+nodes[0].addr+"/api/users/p/preferences", strings.NewReader(body))
		req.Header.Set("X-API-Key", testAPIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := put(`{"types":["-chatty"]}`); code != 200 {
		t.Fatalf("put preferences: %d", code)
	}
	if code := put(`{"types":["["]}`); code != 400 {
		t.Fatalf("bad preferences: %d", code)
	}
	// Wait until the control message has reached node 1.
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if f, ok := nodes[1].srv.prefs.get("p"); ok && f != nil {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("preferences never reached node 1")
		}
	}
	nodes[0].publishTo(t, "p", `{"type":"chatty"}`)
	nodes[0].publishTo(t, "p", `{"type":"important"}`)
	if got := string(readWS(t, ws)); got != `{"type":"important"}` {
		t.Fatalf("live preferences not applied on the other node: %s", got)
	}
	// A connection opened later, on either node, gets them from Redis.
	later := nodes[1].mustSSE(t, q("token", token(t, "p", time.Hour)), "")
	later.next(t)
	nodes[1].publishTo(t, "p", `{"type":"chatty"}`)
	nodes[1].publishTo(t, "p", `{"type":"important","n":2}`)
	if ev := later.next(t); ev.Data != `{"type":"important","n":2}` {
		t.Fatalf("later connection: %s", ev.Data)
	}
	code, out := nodes[1].get(t, "/api/users/p/preferences")
	_ = code
	if code != 401 {
		t.Fatalf("GET preferences without key: %d %v", code, out)
	}
}

// TestFilteredMessagesAdvanceCursor: messages a connection's ?types= filters
// out still move its cursor. The connection's last delivered message is
// followed by filtered ones; the cursor of its final event (here an
// eviction's) must be past them, so a resume from it without the filter
// neither re-delivers them nor reports a reset.
func TestFilteredMessagesAdvanceCursor(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Limits.PerUser = 1
		c.Limits.PerUserPolicy = "evict_oldest"
	})
	tok := token(t, "fc", time.Hour)
	first := ts.mustSSE(t, q("token", tok, "types", "-chatty"), "")
	first.next(t)
	ts.publishTo(t, "fc", `{"type":"important","n":1}`)
	if ev := first.next(t); ev.Data != `{"type":"important","n":1}` {
		t.Fatalf("filtered connection got %s", ev.Data)
	}
	ts.publishTo(t, "fc", `{"type":"chatty","n":2}`)
	ts.publishTo(t, "fc", `{"type":"chatty","n":3}`)
	// A second connection evicts the first, whose final event carries the
	// cursor it reached.
	second := ts.mustSSE(t, q("token", tok), "")
	second.next(t)
	evs := first.ended(t)
	if len(evs) == 0 || !strings.Contains(evs[len(evs)-1].Data, `"reason":"replaced"`) || evs[len(evs)-1].ID == "" {
		t.Fatalf("evicted connection's end: %+v", evs)
	}
	for _, ev := range evs {
		if strings.Contains(ev.Data, "chatty") {
			t.Fatalf("filtered message delivered: %s", ev.Data)
		}
	}
	cursor := evs[len(evs)-1].ID
	ts.publishTo(t, "fc", `{"type":"important","n":4}`)
	// Resume from that cursor with no filter: the next message is the one
	// published after it, not the filtered ones again, and no reset.
	third := ts.mustSSE(t, q("token", tok), cursor)
	third.next(t)
	if ev := third.next(t); ev.Data != `{"type":"important","n":4}` {
		t.Fatalf("resume from a cursor after filtered messages got %s (%s), want n=4", ev.Data, ev.Event)
	}
}

// leaseWatchingPrefs is the Redis broker's preference store whose reads
// hold until the reading user's connection lease is in Redis (at most 5 s)
// and record whether it was: the lease is taken by the same connect, so
// it shows whether the two Redis round trips were in flight together.
type leaseWatchingPrefs struct {
	fanout.PreferenceStore
	broker   *fanout.RedisBroker
	reads    atomic.Int32
	sawLease atomic.Bool
}

func (p *leaseWatchingPrefs) Preferences(ctx context.Context, user string) (string, error) {
	p.reads.Add(1)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if n, err := p.broker.UserConns(ctx, user); err == nil && n > 0 {
			p.sawLease.Store(true)
			break
		}
	}
	return p.PreferenceStore.Preferences(ctx, user)
}

// TestConnectReadsPreferencesWhileAcquiringLease: on a user's first connect
// to a node, the stored preferences are read while the per-user lease is
// acquired (one round trip instead of two), and still apply.
func TestConnectReadsPreferencesWhileAcquiringLease(t *testing.T) {
	rd := redistest.Start(t)
	var lp *leaseWatchingPrefs
	ts := startServer(t, func(c *config.Config) {
		c.Fanout.Broker = "redis"
		c.Fanout.Redis.Shards = []string{rd.Addr()}
		c.Fanout.Redis.Prefix = "prefsoon:"
	}, func(s *Server) {
		s.wrapCaps = func(c brokerCaps) brokerCaps {
			lp = &leaseWatchingPrefs{PreferenceStore: c.prefs, broker: c.redis}
			c.prefs = lp
			return c
		}
	})
	srv := ts.srv

	if err := srv.caps.redis.SetPreferences(t.Context(), "soon", "-chatty"); err != nil {
		t.Fatal(err)
	}
	ws := ts.mustWS(t, q("token", token(t, "soon", time.Hour)))
	readWS(t, ws) // connection_established
	if lp.reads.Load() != 1 || !lp.sawLease.Load() {
		t.Fatalf("preference reads %d, lease seen during the read %v: want 1 read, in flight with the lease", lp.reads.Load(), lp.sawLease.Load())
	}
	ts.publishTo(t, "soon", `{"type":"chatty","n":1}`)
	ts.publishTo(t, "soon", `{"type":"wanted","n":2}`)
	if got := string(readWS(t, ws)); got != `{"type":"wanted","n":2}` {
		t.Fatalf("got %s: the stored filter was not applied", got)
	}
}

// TestPreferencesCacheBoundedByConnectedUsers: with preferences stored in
// Redis, a node caches a user's filter only while the user is connected
// to it. The cache used to keep an entry for every user that ever
// connected (or was looked up), growing without bound on a long-lived
// node. A returning user still gets the stored filter, and a filter
// changed while the user was away is the one applied.
func TestPreferencesCacheBoundedByConnectedUsers(t *testing.T) {
	srv := redistest.Start(t)
	nodes := redisNodes(t, 1, []string{srv.Addr()}, "prefcache:")
	n := nodes[0]
	put := func(user, body string) {
		t.Helper()
		req, _ := http.NewRequest("PUT", "http://"+n.addr+"/api/users/"+user+"/preferences", strings.NewReader(body))
		req.Header.Set("X-API-Key", testAPIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("put preferences of %s: %d", user, resp.StatusCode)
		}
	}
	put("c0", `{"types":["-chatty"]}`)
	const users = 30
	var conns []*websocket.Conn
	for i := range users {
		ws := n.mustWS(t, q("token", token(t, fmt.Sprintf("c%d", i), time.Hour)))
		readWS(t, ws)
		conns = append(conns, ws)
	}
	if got := n.srv.prefs.len(); got != users {
		t.Fatalf("%d users cached with %d connected; want %d", got, users, users)
	}
	for _, ws := range conns {
		ws.Close()
	}
	for start := time.Now(); n.srv.prefs.len() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%d users still cached after all disconnected", n.srv.prefs.len())
		}
	}
	// Changed while c0 was away: the returning connection reads the store.
	put("c0", `{"types":["-noisy"]}`)
	ws := n.mustWS(t, q("token", token(t, "c0", time.Hour)))
	readWS(t, ws)
	n.publishTo(t, "c0", `{"type":"noisy"}`)
	n.publishTo(t, "c0", `{"type":"chatty"}`)
	if got := string(readWS(t, ws)); got != `{"type":"chatty"}` {
		t.Fatalf("returning user got %s; want the filter stored while away applied", got)
	}
}
