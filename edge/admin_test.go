package edge

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/internal/redistest"
)

const testAdminKey = "test-admin-key-0123456789"

func adminDo(t *testing.T, ts *testServer, method, path, key, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+ts.addr+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("X-Admin-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: %q", method, path, b)
	}
	return resp.StatusCode, out
}

// TestAdminAcrossNodes: the admin API on one node sees and disconnects a
// user's connections on every node.
func TestAdminAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	nodes := redisNodes(t, 2, []string{srv.Addr()}, "adm:", func(c *config.Config) { c.Admin.Key = testAdminKey })
	ws := nodes[0].mustWS(t, q("token", token(t, "42", time.Hour)))
	readWS(t, ws)
	sse := nodes[1].mustSSE(t, q("token", token(t, "42", time.Hour)), "")
	sse.next(t)
	other := nodes[1].mustWS(t, q("token", token(t, "43", time.Hour)))
	readWS(t, other)

	if code, _ := adminDo(t, nodes[0], "GET", "/admin/connections?user_id=42", "", ""); code != 401 {
		t.Fatalf("no key: %d", code)
	}
	if code, _ := adminDo(t, nodes[0], "GET", "/admin/connections?user_id=42", testAPIKey, ""); code != 401 {
		t.Fatalf("publish key accepted as admin key: %d", code)
	}
	code, out := adminDo(t, nodes[0], "GET", "/admin/connections?user_id=42", testAdminKey, "")
	conns, _ := out["connections"].([]any)
	if code != 200 || len(conns) != 2 {
		t.Fatalf("connections: %d %v", code, out)
	}
	transports := map[string]bool{}
	for _, c := range conns {
		m := c.(map[string]any)
		transports[m["transport"].(string)] = true
		if m["cursor"] == "" || m["node"] == "" || m["remote"] == "" {
			t.Fatalf("incomplete connection info %v", m)
		}
	}
	if !transports["ws"] || !transports["sse"] {
		t.Fatalf("want one ws and one sse, got %v", conns)
	}
	code, out = adminDo(t, nodes[1], "GET", "/admin/nodes", testAdminKey, "")
	if code != 200 || len(out["nodes"].([]any)) != 2 {
		t.Fatalf("nodes: %v", out)
	}
	code, out = adminDo(t, nodes[1], "POST", "/admin/disconnect", testAdminKey, `{"user_id":"42","reason":"logout"}`)
	if code != 200 || out["disconnected"] != 2.0 {
		t.Fatalf("disconnect: %d %v", code, out)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			if !websocketCloseCode(err, 4403) {
				t.Fatalf("ws: want close 4403, got %v", err)
			}
			break
		}
		if !strings.Contains(string(b), `"reason":"logout","reconnect":false`) {
			t.Fatalf("ws final event %s", b)
		}
	}
	evs := sse.ended(t)
	if len(evs) == 0 || !strings.Contains(evs[len(evs)-1].Data, `"reason":"logout"`) {
		t.Fatalf("sse end %+v", evs)
	}
	// User 43 is untouched.
	nodes[0].publishTo(t, "43", `{"ok":1}`)
	if got := string(readWS(t, other)); got != `{"ok":1}` {
		t.Fatalf("other user: %s", got)
	}
	code, out = adminDo(t, nodes[0], "GET", "/admin/channels?channel=user:43", testAdminKey, "")
	if code != 200 || out["offset"] != 1.0 {
		t.Fatalf("channels: %v", out)
	}
}

func TestAdminDisabledWithoutKey(t *testing.T) {
	ts := startServer(t, nil)
	if code, _ := adminDo(t, ts, "GET", "/admin/nodes", "anything", ""); code != 404 {
		t.Fatalf("admin without admin.key: %d", code)
	}
}
