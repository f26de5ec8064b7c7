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

// Hostile-input suite, publish API surface: every case is a request a
// careless or hostile backend could send, with the answer Herald must give
// and the bound it must hold. docs/SECURITY.md lists the same table.

// noKeepAlive opens a connection per request: Herald closes the
// connection after some refusals (413), which a reused one would hit.
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}

// postRaw sends body to path with the headers given and returns the status
// and the decoded JSON reply.
func (ts *testServer) postRaw(t testing.TB, path string, header map[string]string, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+ts.addr+path, strings.NewReader(string(body)))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := noKeepAlive.Do(req)
	if err != nil {
		if len(body) > 64<<10 && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")) {
			// Herald answered 413 and closed before the client finished
			// writing the oversized body: the kernel resets the socket.
			return 413, map[string]any{"message": "body (connection reset)"}
		}
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("POST %s: reply %q is not JSON: %v", path, b, err)
	}
	return resp.StatusCode, out
}

func TestHostilePublishAPI(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.API.MaxBodyBytes = 64 << 10; c.API.MaxBatch = 10 })
	key := map[string]string{"X-API-Key": testAPIKey, "Content-Type": "application/json"}
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	cases := []struct {
		name    string
		path    string
		header  map[string]string
		body    string
		status  int
		errSub  string        // in the reply's message
		maxCPU  time.Duration // process CPU for the request (bound)
		maxRSSM int           // RSS growth bound in MiB over 50 repeats
	}{
		{"invalid UTF-8 in data", "/api/publish", key, "{\"user_id\":\"u\",\"data\":\"\xff\"}", 400, "byte offset 23", 200 * time.Millisecond, 16},
		{"invalid UTF-8 in a key", "/api/publish", key, "{\"user_id\":\"u\",\"data\":{\"\xc3\":1}}", 400, "byte offset 24", 200 * time.Millisecond, 16},
		{"overlong UTF-8", "/api/publish", key, "{\"user_id\":\"u\",\"data\":\"\xc0\xaf\"}", 400, "invalid UTF-8", 200 * time.Millisecond, 16},
		{"UTF-8 encoded surrogate", "/api/publish", key, "{\"user_id\":\"u\",\"data\":\"\xed\xa0\x80\"}", 400, "invalid UTF-8", 200 * time.Millisecond, 16},
		{"invalid UTF-8 in a batch", "/api/publish/batch", key, "{\"messages\":[{\"user_id\":\"u\",\"data\":1},{\"user_id\":\"u\",\"data\":\"\xfe\"}]}", 400, "invalid UTF-8", 200 * time.Millisecond, 16},
		{"user_id with a colon", "/api/publish", key, `{"user_id":"4:2","data":1}`, 400, "can never be a token's user id", 200 * time.Millisecond, 16},
		{"user_id naming a channel", "/api/publish", key, `{"user_id":"user:43","data":1}`, 400, "can never be a token's user id", 200 * time.Millisecond, 16},
		{"user_id with a space", "/api/publish", key, `{"user_id":"a b","data":1}`, 400, "user_id", 200 * time.Millisecond, 16},
		{"user_id too long", "/api/publish", key, `{"user_id":"` + strings.Repeat("u", 129) + `","data":1}`, 400, "longer than", 200 * time.Millisecond, 16},
		{"user channel no token opens", "/api/publish", key, `{"channel":"user:4:2","data":1}`, 400, "can never be a token's user id", 200 * time.Millisecond, 16},
		{"reserved control channel", "/api/publish", key, `{"channel":"herald.all","data":{"type":"disconnect","user":"1"}}`, 400, "reserved", 200 * time.Millisecond, 16},
		{"channel with NUL", "/api/publish", key, "{\"channel\":\"a\\u0000b\",\"data\":1}", 400, "invalid channel", 200 * time.Millisecond, 16},
		{"deep nesting", "/api/publish", key, `{"user_id":"u","data":` + deep + `}`, 400, "invalid JSON", 500 * time.Millisecond, 32},
		{"body over the limit", "/api/publish", key, `{"user_id":"u","data":"` + strings.Repeat("x", 65<<10) + `"}`, 413, "body", 200 * time.Millisecond, 32},
		{"trailing garbage", "/api/publish", key, `{"user_id":"u","data":1}]]`, 400, "trailing", 200 * time.Millisecond, 16},
		{"no API key", "/api/publish", map[string]string{"Content-Type": "application/json"}, `{"user_id":"u","data":1}`, 401, "API key", 200 * time.Millisecond, 16},
		{"API key in the query only", "/api/publish?api_key=" + testAPIKey, nil, `{"user_id":"u","data":1}`, 401, "API key", 200 * time.Millisecond, 16},
		{"long idempotency key", "/api/publish", key, `{"user_id":"u","data":1,"idempotency_key":"` + strings.Repeat("k", 201) + `"}`, 400, "idempotency_key", 200 * time.Millisecond, 16},
		{"batch over max_batch", "/api/publish/batch", key, `{"messages":[` + strings.TrimSuffix(strings.Repeat(`{"user_id":"u","data":1},`, 11), ",") + `]}`, 400, "limit is 10", 200 * time.Millisecond, 16},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rss := rssBytes(t)
			cpu := cpuTime(t)
			code, out := ts.postRaw(t, tc.path, tc.header, []byte(tc.body))
			used := cpuTime(t) - cpu
			if code != tc.status {
				t.Fatalf("status %d, want %d (%v)", code, tc.status, out)
			}
			if msg, _ := out["message"].(string); !strings.Contains(msg, tc.errSub) {
				t.Fatalf("message %q does not mention %q", msg, tc.errSub)
			}
			if over, used := overCPU(t, used, tc.maxCPU, func() { ts.postRaw(t, tc.path, tc.header, []byte(tc.body)) }); over {
				t.Fatalf("request cost %s of CPU (least of 3), bound %s", used, tc.maxCPU)
			}
			for range 50 {
				if code, _ := ts.postRaw(t, tc.path, tc.header, []byte(tc.body)); code != tc.status {
					t.Fatalf("repeat: status %d", code)
				}
			}
			if grown := rssBytes(t) - rss; grown > int64(tc.maxRSSM)<<20 {
				t.Fatalf("RSS grew %d MiB over 50 repeats, bound %d MiB", grown>>20, tc.maxRSSM)
			}
		})
	}
	// Nothing refused above was published: user u's history is empty.
	req, _ := http.NewRequest("GET", "http://"+ts.addr+"/api/history?user_id=u", nil)
	req.Header.Set("X-API-Key", testAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var hist struct{ Messages []json.RawMessage }
	if err := jsonDecode(resp, &hist); err != nil || resp.StatusCode != 200 || len(hist.Messages) != 0 {
		t.Fatalf("history of u: %d %v %s", resp.StatusCode, err, hist.Messages)
	}
}

// TestPublishTraceparentNotSpliced is the reproduction of the traceparent
// injection: with the Redis broker and tracing off, a publish whose
// traceparent is not in the W3C format must reach clients unchanged (the
// header is ignored).
func TestPublishTraceparentNotSpliced(t *testing.T) {
	nodes := redisNodes(t, 1, []string{redistest.Start(t).Addr()}, "tp:")
	ts := nodes[0]
	c := ts.mustWS(t, q("token", token(t, "tp", time.Hour)))
	readWS(t, c) // connection_established
	for _, tp := range []string{
		"x|INJECTED",
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01|INJECTED",
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-INJECTED",
	} {
		code, out := ts.postRaw(t, "/api/publish", map[string]string{"X-API-Key": testAPIKey, "traceparent": tp, "tracestate": "a=b|INJECTED"},
			[]byte(`{"user_id":"tp","data":{"n":1}}`))
		if code != 200 {
			t.Fatalf("traceparent %q: %d %v", tp, code, out)
		}
		if got := string(readWS(t, c)); got != `{"n":1}` {
			t.Fatalf("traceparent %q: client got %q", tp, got)
		}
	}
}

func TestValidTraceContext(t *testing.T) {
	const good = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	cases := []struct{ parent, state, wantParent, wantState string }{
		{good, "", good, ""},
		{good, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", good, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"},
		{good, "not a list|x", good, ""},
		{"", "a=b", "", ""},
		{"x|INJECTED", "a=b", "", ""},
		{"00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01", "", "", ""},   // upper case
		{"00-00000000000000000000000000000000-b7ad6b7169203331-01", "", "", ""},   // zero trace id
		{"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", "", "", ""},   // zero span id
		{"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "", "", ""},   // version ff
		{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x", "", "", ""}, // v00 with extra
		{good[:54], "", "", ""},
		{good + "|x", "", "", ""},
		{strings.Repeat("0", 600), "", "", ""},
	}
	for _, tc := range cases {
		p, s := validTraceContext([]byte(tc.parent), []byte(tc.state))
		if p != tc.wantParent || s != tc.wantState {
			t.Errorf("validTraceContext(%q, %q) = %q, %q; want %q, %q", tc.parent, tc.state, p, s, tc.wantParent, tc.wantState)
		}
	}
}
