package edge

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/redistest"
)

// docACLLine returns the "ACL SETUSER herald ..." line of docs/redis.md,
// split into arguments, with the password placeholder replaced.
func docACLLine(t *testing.T, password string) []string {
	t.Helper()
	f, err := os.Open("../docs/redis.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var found []string
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "ACL SETUSER herald on ") {
			found = append(found, line)
		}
	}
	if len(found) != 1 {
		t.Fatalf("docs/redis.md has %d \"ACL SETUSER herald on\" lines, want 1: %q", len(found), found)
	}
	args := strings.Fields(found[0])
	n := 0
	for i, a := range args {
		if a == ">CHANGE-ME" {
			args[i] = ">" + password
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the ACL line has no >CHANGE-ME password placeholder: %s", found[0])
	}
	return args
}

// docACLClusterLine returns the "ACL SETUSER herald +..." line of
// docs/redis.md that adds what cluster mode needs.
func docACLClusterLine(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../docs/redis.md")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "ACL SETUSER herald +") {
			found = append(found, line)
		}
	}
	if len(found) != 1 {
		t.Fatalf("docs/redis.md has %d \"ACL SETUSER herald +\" lines, want 1", len(found))
	}
	return strings.Fields(found[0])
}

// TestRedisACLUserOverTLS: two Herald nodes use Redis shards over TLS as
// the user created by exactly the ACL line of docs/redis.md. Publishing
// (with idempotency keys), live delivery over WebSocket and SSE, resuming
// from a cursor, history, recent messages, preferences and the per-user
// connection limit all work, and Redis logged no denied command or key.
func TestRedisACLUserOverTLS(t *testing.T) {
	files := redistest.NewTLS(t)
	const password = "acl-test-pw-0123"
	var shards, plain []string
	for range 2 {
		s := redistest.Start(t, redistest.TLS(files, true))
		if _, err := redistest.Do(s.Addr(), docACLLine(t, password)...); err != nil {
			t.Fatalf("the ACL line of docs/redis.md: %v", err)
		}
		shards, plain = append(shards, s.TLSAddr()), append(plain, s.Addr())
	}
	nodes := redisNodes(t, 2, shards, "herald:", func(c *config.Config) {
		c.Fanout.Redis.Username, c.Fanout.Redis.Password = "herald", password
		c.Fanout.Redis.TLS = fanout.RedisTLSConfig{Enabled: true, CAFile: files.CA, CertFile: files.ClientCert, KeyFile: files.ClientKey}
		c.Limits.PerUser = 2
	})
	aclWorkload(t, nodes[0], nodes[1])
	checkACLLog(t, plain)
}

// TestRedisACLUserCluster: the same in cluster mode, as the user made by
// the ACL line plus the cluster line of docs/redis.md.
func TestRedisACLUserCluster(t *testing.T) {
	const password = "acl-cluster-pw-0123"
	seeds := redistest.StartCluster(t, 3)
	for _, a := range seeds {
		if _, err := redistest.Do(a, docACLLine(t, password)...); err != nil {
			t.Fatalf("the ACL line of docs/redis.md: %v", err)
		}
		if _, err := redistest.Do(a, docACLClusterLine(t)...); err != nil {
			t.Fatalf("the cluster ACL line of docs/redis.md: %v", err)
		}
	}
	nodes := redisNodes(t, 2, nil, "herald:", func(c *config.Config) {
		c.Fanout.Redis.Shards = nil
		c.Fanout.Redis.Cluster = seeds
		c.Fanout.Redis.Partitions = 4
		c.Fanout.Redis.Username, c.Fanout.Redis.Password = "herald", password
		c.Limits.PerUser = 2
	})
	aclWorkload(t, nodes[0], nodes[1])
	checkACLLog(t, seeds)
}

// checkACLLog fails when any of the Redis servers logged a denied command
// or key.
func checkACLLog(t *testing.T, addrs []string) {
	t.Helper()
	for _, p := range addrs {
		log, err := redistest.Do(p, "ACL", "LOG")
		if err != nil {
			t.Fatal(err)
		}
		if entries, _ := log.([]any); len(entries) != 0 {
			t.Fatalf("Redis %s denied the herald user: %v", p, log)
		}
	}
}

// aclWorkload uses every Redis feature of two nodes a and b (limits.per_user
// 2): subscriptions, publishes with idempotency keys, WebSocket and SSE
// delivery, resume, history, recent messages, preferences.
func aclWorkload(t *testing.T, a, b *testServer) {
	t.Helper()
	users := []string{"1", "2", "3", "4", "5", "6"} // spread over the shards
	var wss []*wsClient
	for _, u := range users {
		ws := b.mustWS(t, q("token", token(t, u, time.Hour), "format", "envelope"))
		readWSJSON(t, ws)
		wss = append(wss, &wsClient{user: u, c: ws})
	}
	sse := a.mustSSE(t, q("token", token(t, "1", time.Hour)), "")
	sse.next(t)
	// The per-user limit (2) counts connections across nodes in Redis.
	if _, resp, err := a.dialWS(t, q("token", token(t, "1", time.Hour)), nil); err == nil || resp == nil || resp.StatusCode != 429 {
		t.Fatalf("third connection of user 1: %v %v, want 429", resp, err)
	}
	for _, u := range users {
		code, out := a.post(t, "/api/publish", testAPIKey, fmt.Sprintf(`{"user_id":%q,"data":{"n":1},"idempotency_key":"k%s"}`, u, u))
		if code != 200 {
			t.Fatalf("publish to %s: %d %v", u, code, out)
		}
		code, out = a.post(t, "/api/publish", testAPIKey, fmt.Sprintf(`{"user_id":%q,"data":{"n":1},"idempotency_key":"k%s"}`, u, u))
		if code != 200 {
			t.Fatalf("repeated publish to %s: %d %v", u, code, out)
		}
		a.publishTo(t, u, `{"n":2}`)
	}
	for _, w := range wss {
		for n := 1; n <= 2; n++ {
			env := readWSJSON(t, w.c)
			if d, _ := env["data"].(map[string]any); d["n"] != float64(n) {
				t.Fatalf("user %s: got %v, want n=%d", w.user, env, n)
			}
		}
	}
	first := sse.next(t)
	sse.next(t)
	sse.resp.Body.Close()
	a.publishTo(t, "1", `{"n":3}`)
	var resumed *sseClient
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) { // until node a released the closed stream's slot
		c, resp, err := b.openSSE(t, q("token", token(t, "1", time.Hour)), first.ID)
		if err == nil && resp.StatusCode == 200 {
			resumed = c
			break
		}
		if resp != nil {
			resp.Body.Close()
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("resume SSE: %v %v", resp, err)
		}
	}
	resumed.next(t) // connection_established
	for n := 2; n <= 3; n++ {
		if ev := resumed.next(t); ev.Data != fmt.Sprintf(`{"n":%d}`, n) {
			t.Fatalf("resumed SSE: got %s, want n=%d", ev.Data, n)
		}
	}
	if code, got, _ := historyPage(t, a, "/api/me/history?limit=10&token="+token(t, "2", time.Hour), ""); code != 200 || len(got) != 2 {
		t.Fatalf("/api/me/history: %d %v", code, got)
	}
	if code, got, _ := historyPage(t, b, "/api/history?user_id=3", testAPIKey); code != 200 || len(got) != 2 {
		t.Fatalf("/api/history: %d %v", code, got)
	}
	prefs := func(method string, ts *testServer, body string) (int, string) {
		req, _ := http.NewRequest(method, "http://"+ts.addr+"/api/users/4/preferences", strings.NewReader(body))
		req.Header.Set("X-API-Key", testAPIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	if code, out := prefs("PUT", a, `{"types":["-chatty"]}`); code != 200 {
		t.Fatalf("put preferences: %d %s", code, out)
	}
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) { // b learns them through Redis pub/sub
		code, out := prefs("GET", b, "")
		if code == 200 && strings.Contains(out, "chatty") {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("get preferences: %d %s", code, out)
		}
	}
	for _, w := range wss {
		w.c.Close()
	}
	resumed.resp.Body.Close()
	// Let background work (lease renewals, releases, unsubscribes, probes)
	// run, then check that Redis denied nothing.
	time.Sleep(1500 * time.Millisecond)
}

type wsClient struct {
	user string
	c    *websocket.Conn
}
