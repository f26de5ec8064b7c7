package edge

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
)

// Hostile-input suite, admin API surface: requests a holder of the wrong
// key, or a careless operator script, could send, with the answer Herald
// must give and the bound it must hold. docs/SECURITY.md lists the table.
func TestHostileAdminAPI(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Admin.Key = testAdminKey })
	// A connection that must survive every refused disconnect below.
	ws := ts.mustWS(t, q("token", token(t, "a1", time.Hour)))
	readWS(t, ws)
	admin := map[string]string{"X-Admin-Key": testAdminKey}
	cases := []struct {
		name, method, path string
		header             map[string]string
		body               string
		status             int
		errSub             string
		maxCPU             time.Duration
	}{
		{"no key", "GET", "/admin/nodes", nil, "", 401, "X-Admin-Key", 200 * time.Millisecond},
		{"API key as admin key", "GET", "/admin/nodes", map[string]string{"X-Admin-Key": testAPIKey}, "", 401, "X-Admin-Key", 200 * time.Millisecond},
		{"admin key as API key", "POST", "/api/publish", map[string]string{"X-API-Key": testAdminKey}, `{"user_id":"a1","data":1}`, 401, "API key", 200 * time.Millisecond},
		{"admin key in the query", "GET", "/admin/nodes?key=" + testAdminKey, nil, "", 401, "X-Admin-Key", 200 * time.Millisecond},
		{"admin key prefix", "GET", "/admin/nodes", map[string]string{"X-Admin-Key": testAdminKey[:10]}, "", 401, "X-Admin-Key", 200 * time.Millisecond},
		{"connections without user", "GET", "/admin/connections", admin, "", 400, "user_id is required", 200 * time.Millisecond},
		{"connections, impossible user", "GET", "/admin/connections?user_id=4:2", admin, "", 400, "not allowed", 200 * time.Millisecond},
		{"disconnect by GET", "GET", "/admin/disconnect", admin, "", 405, "POST", 200 * time.Millisecond},
		{"disconnect, malformed JSON", "POST", "/admin/disconnect", admin, `{"user_id":`, 400, "body must be", 200 * time.Millisecond},
		{"disconnect, invalid UTF-8", "POST", "/admin/disconnect", admin, "{\"user_id\":\"a1\",\"reason\":\"\xff\"}", 400, "byte offset 26", 200 * time.Millisecond},
		{"disconnect, impossible user", "POST", "/admin/disconnect", admin, `{"user_id":"user:a1"}`, 400, "not allowed", 200 * time.Millisecond},
		{"disconnect, reason over 256 bytes", "POST", "/admin/disconnect", admin, `{"user_id":"a1","reason":"` + strings.Repeat("é", 200) + `"}`, 400, "limit is 256", 200 * time.Millisecond},
		{"channels, invalid channel", "GET", "/admin/channels?channel=a%20b", admin, "", 400, "valid channel", 200 * time.Millisecond},
		{"unknown endpoint", "GET", "/admin/nope", admin, "", 404, "no such", 200 * time.Millisecond},
		{"dot-dot path to the publish API", "GET", "/admin/../api/publish", admin, "", 405, "POST", 200 * time.Millisecond},
		{"body over the API limit", "POST", "/admin/disconnect", admin, `{"user_id":"a1","reason":"` + strings.Repeat("x", 2<<20) + `"}`, 413, "", 500 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cpu := cpuTime(t)
			h := map[string]string{}
			for k, v := range tc.header {
				h[k] = v
			}
			var code int
			var out map[string]any
			if tc.method == "GET" {
				code, out = ts.getRaw(t, tc.path, h)
			} else {
				code, out = ts.postRaw(t, tc.path, h, []byte(tc.body))
			}
			used := cpuTime(t) - cpu
			if code != tc.status {
				t.Fatalf("status %d, want %d (%v)", code, tc.status, out)
			}
			if msg, _ := out["message"].(string); !strings.Contains(msg, tc.errSub) {
				t.Fatalf("message %q does not mention %q", msg, tc.errSub)
			}
			if over, used := overCPU(t, used, tc.maxCPU, func() {
				if tc.method == "GET" {
					ts.getRaw(t, tc.path, h)
				} else {
					ts.postRaw(t, tc.path, h, []byte(tc.body))
				}
			}); over {
				t.Fatalf("request cost %s of CPU (least of 3), bound %s", used, tc.maxCPU)
			}
		})
	}
	// None of the refused requests disconnected a1 or published to it.
	ts.publishTo(t, "a1", `{"still":1}`)
	if m := readWSJSON(t, ws); m["still"] != 1.0 {
		t.Fatalf("a1 got %v", m)
	}
}

// getRaw sends a GET with the headers given and returns the status and the
// decoded JSON reply (an empty map when the reply is not JSON).
func (ts *testServer) getRaw(t testing.TB, path string, header map[string]string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+ts.addr+path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := noKeepAlive.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	_ = jsonDecode(resp, &out)
	return resp.StatusCode, out
}
