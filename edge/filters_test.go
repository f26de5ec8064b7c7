package edge

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
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
