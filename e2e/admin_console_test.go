package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/internal/heraldtest"
	"github.com/heraldrt/herald/internal/redistest"
)

// TestAdminConsole drives the admin console in Chromium against two nodes
// on one Redis: sign in (the key lands in sessionStorage, nowhere else),
// both nodes healthy with their shard, connections by transport and node,
// live counters moving under load, a user's connections on both nodes, a
// test message published from the page arriving at the user's real
// WebSocket and in the channel history on the page, and a disconnect that
// closes the user's connections on both nodes and no one else's. A wrong
// key is refused. Screenshots go to $HERALD_ARTIFACTS.
func TestAdminConsole(t *testing.T) {
	rs := redistest.Start(t)
	cfg := func(c *config.Config) {
		c.Fanout.Broker = "redis"
		c.Fanout.Redis.Shards = []string{rs.Addr()}
		c.Fanout.Redis.Prefix = "e2e-admin:"
		c.Admin.Key = testAdminKey
	}
	n1 := startHerald(t, cfg, nil)
	n2 := startHerald(t, cfg, nil)

	dial := func(n *node, user string) *websocket.Conn {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+n.Addr+"/ws/notifications/?token="+heraldtest.Token(t, user), nil)
		if err != nil {
			t.Fatalf("dial %s as %s: %v", n.Addr, user, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	u42a := dial(n1, "42")
	u42b := dial(n2, "42")
	u7 := dial(n2, "7")
	openSSE(t, nil, "http://"+n1.Addr+"/sse/notifications/?token="+heraldtest.Token(t, "8"), nil)

	b := startBrowser(t)
	p := b.newPage()
	p.viewport(1280, 1000, false)
	p.navigate("http://" + n1.Addr + "/admin/")
	p.waitFor(`!document.getElementById('login').classList.contains('hidden')`, 10*time.Second)

	// A wrong key is refused and forgotten.
	p.mustEval(`document.getElementById('key').value = 'not-the-admin-key-000'; document.getElementById('login-form').requestSubmit(); true`, nil)
	p.waitFor(`document.getElementById('login-error').textContent.includes('refused')`, 10*time.Second)
	var stored string
	p.mustEval(`sessionStorage.getItem('heraldAdminKey') || ''`, &stored)
	if stored != "" {
		t.Fatalf("a refused key stayed in sessionStorage: %q", stored)
	}

	p.mustEval(`document.getElementById('key').value = `+jsString(testAdminKey)+`; document.getElementById('login-form').requestSubmit(); true`, nil)
	p.waitFor(`document.getElementById('c-nodes').textContent === '2'`, 15*time.Second)
	p.mustEval(`sessionStorage.getItem('heraldAdminKey')`, &stored)
	if stored != testAdminKey {
		t.Fatalf("sessionStorage holds %q", stored)
	}
	var leak bool
	p.mustEval(`location.href.includes(`+jsString(testAdminKey)+`) || document.cookie.includes(`+jsString(testAdminKey)+
		`) || localStorage.length > 0 || document.body.innerHTML.includes(`+jsString(testAdminKey)+`)`, &leak)
	if leak {
		t.Fatal("the admin key is in the URL, a cookie, localStorage or the DOM")
	}

	// Nodes, health, shards, connections by transport and node.
	p.waitFor(`document.getElementById('c-conns').textContent === '4' && document.getElementById('c-ws').textContent === '3' && document.getElementById('c-sse').textContent === '1'`, 15*time.Second)
	var nodesText string
	p.mustEval(`document.getElementById('nodes').tBodies[0].innerText`, &nodesText)
	if strings.Count(nodesText, "healthy") != 2 || strings.Count(nodesText, rs.Addr()) != 2 || strings.Count(nodesText, "redis") < 2 {
		t.Fatalf("nodes table:\n%s", nodesText)
	}
	var perNode []int
	p.mustEval(`[...document.getElementById('nodes').tBodies[0].rows].map(r => +r.cells[6].textContent + +r.cells[7].textContent).sort()`, &perNode)
	if len(perNode) != 2 || perNode[0] != 2 || perNode[1] != 2 {
		t.Fatalf("connections per node %v, want [2 2]", perNode)
	}

	// Live counters move under load.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			publish(t, nil, "http://"+n2.Addr, "8", `{"type":"load","i":`+strconv.Itoa(i)+`}`)
		}
	}()
	p.waitFor(`parseFloat(document.getElementById('c-rate').textContent) > 0 && parseFloat(document.getElementById('c-pub').textContent) > 0 && /ms|s$/.test(document.getElementById('c-p99').textContent)`, 20*time.Second)
	p.screenshot("admin-console.png")
	close(stop)
	<-done

	// A user's connections across both nodes.
	p.mustEval(`document.getElementById('user-id').value = '42'; document.getElementById('user-form').requestSubmit(); true`, nil)
	p.waitFor(`document.getElementById('user-conns').tBodies[0].rows.length === 2`, 10*time.Second)
	var userText string
	p.mustEval(`document.getElementById('user-conns').innerText`, &userText)
	if strings.Count(userText, "ws") < 2 || !strings.Contains(userText, "user:42") {
		t.Fatalf("user table:\n%s", userText)
	}

	// A test message from the page reaches the user's real WebSocket on the
	// other node, and the page sees it arrive in the channel's history.
	p.mustEval(`document.getElementById('pub-kind').value = 'user_id'; document.getElementById('pub-target').value = '42';
		document.getElementById('pub-data').value = '{"type":"admin_test","marker":"from-the-console"}';
		document.getElementById('pub-form').requestSubmit(); true`, nil)
	for _, c := range []*websocket.Conn{u42a, u42b} {
		readUntil(t, c, "from-the-console")
	}
	p.waitFor(`document.getElementById('pub-msg').textContent.includes('arrived in user:42')`, 10*time.Second)
	p.waitFor(`document.getElementById('history').innerText.includes('from-the-console')`, 10*time.Second)
	p.screenshot("admin-console-user.png")

	// Disconnect user 42 everywhere; user 7 stays.
	p.mustEval(`document.getElementById('disconnect').click(); true`, nil)
	p.waitFor(`document.getElementById('user-msg').textContent.includes('disconnected 2 connection')`, 10*time.Second)
	for _, c := range []*websocket.Conn{u42a, u42b} {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				var ce *websocket.CloseError
				if !asCloseError(err, &ce) || ce.Code != 4403 {
					t.Fatalf("user 42's connection ended with %v, want close 4403", err)
				}
				break
			}
		}
	}
	publish(t, nil, "http://"+n1.Addr, "7", `{"type":"still","marker":"user-7-alive"}`)
	readUntil(t, u7, "user-7-alive")

	// CSRF: without the header nothing happens, and no other origin may
	// read or send with the key (no CORS grant).
	req, _ := http.NewRequest("POST", "http://"+n1.Addr+"/admin/disconnect", strings.NewReader(`{"user_id":"7"}`))
	req.Header.Set("Origin", "http://evil.example")
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("keyless cross-site POST: %d, want 401", resp.StatusCode)
	}
	req, _ = http.NewRequest("OPTIONS", "http://"+n1.Addr+"/admin/disconnect", nil)
	req.Header.Set("Origin", "http://evil.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "x-admin-key")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Access-Control-Allow-Headers") != "" {
		t.Fatalf("preflight granted: %v", resp.Header)
	}
	resp, err = http.Get("http://" + n1.Addr + "/admin/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src 'unsafe-inline'") {
		t.Fatalf("console CSP %q", csp)
	}
}

func readUntil(t *testing.T, c *websocket.Conn, substr string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %q: %v", substr, err)
		}
		if strings.Contains(string(b), substr) {
			return
		}
	}
}

func asCloseError(err error, target **websocket.CloseError) bool {
	ce, ok := err.(*websocket.CloseError)
	if ok {
		*target = ce
	}
	return ok
}
