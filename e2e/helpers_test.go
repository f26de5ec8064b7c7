package e2e

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/internal/edgetest"
	"github.com/heraldrt/herald/internal/heraldtest"
	"github.com/heraldrt/herald/internal/ssetest"
)

// need skips t because program is missing, or fails it when CI=true.
func need(t testing.TB, program string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (CI=true: browser/proxy tests must run)", program)
	}
	t.Skipf("%s is not installed", program)
}

// node is one in-process Herald.
type node = edgetest.Node

func testConfig() config.Config {
	cfg := heraldtest.Config(heraldtest.Secret, heraldtest.APIKey)
	cfg.Dev.Enabled = true
	return cfg
}

// startHerald starts a node on cfg.Server.Listen (a free loopback port
// unless mutate sets one); wrap, when set, wraps the listener (TLS).
func startHerald(t testing.TB, mutate func(*config.Config), wrap func(net.Listener) (net.Listener, error)) *node {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	return edgetest.Start(t, cfg, edgetest.Options{Wrap: wrap})
}

// publish posts one message for user through base (a Herald or proxy URL).
func publish(t testing.TB, client *http.Client, base, user, data string) {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	body := `{"user_id":"` + user + `","data":` + data + `}`
	req, _ := http.NewRequest("POST", base+"/api/publish", strings.NewReader(body))
	req.Header.Set("X-API-Key", heraldtest.APIKey)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("publish %s: %d %s", body, resp.StatusCode, b)
	}
}

// steps are the guide's five workflow steps.
var steps = []string{"Preparing Data", "Upload to UCM", "Interface Loader", "Journal Import", "AutoPost"}

// workflow returns the guide's messages for transaction tx: started, the
// five progress steps, completed.
func workflow(tx int) []string {
	out := []string{fmt.Sprintf(`{"type":"oracle_upload_started","transaction_id":%d,"message":"Oracle upload started for transaction %d"}`, tx, tx)}
	for i, s := range steps {
		out = append(out, fmt.Sprintf(`{"type":"oracle_upload_progress","transaction_id":%d,"step":%q,"step_number":%d,"total_steps":5,"message":"Running %s","status":"processing"}`, tx, s, i+1, s))
	}
	return append(out, fmt.Sprintf(`{"type":"oracle_upload_completed","transaction_id":%d,"message":"Oracle upload completed successfully","success":true,"result_path":"/results/%d.csv"}`, tx, tx))
}

// gate is a reverse proxy in front of Herald that can refuse WebSocket
// upgrades (as some corporate proxies do) and cut the WebSockets it
// carries, while it streams everything else unbuffered. /herald.js comes
// from Herald itself: no fallback copy that would hide a broken route.
type gate struct {
	url     string // http://127.0.0.1:port
	target  *url.URL
	rp      *httputil.ReverseProxy
	blockWS atomic.Bool
	hold    atomic.Bool // answer 502 to everything, as when the backend is down
	srv     *http.Server

	mu       sync.Mutex
	hijacked map[net.Conn]bool
	refused  atomic.Int64 // upgrades refused
	upgrades atomic.Int64 // upgrades passed through
}

func startGate(t testing.TB, heraldAddr string) *gate {
	t.Helper()
	g := &gate{target: &url.URL{Scheme: "http", Host: heraldAddr}, hijacked: map[net.Conn]bool{}}
	g.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(g.target)
			pr.Out.Host = pr.In.Host // Herald allows the page's own Origin by Host
		},
		FlushInterval: -1, // SSE: flush every write
		ErrorLog:      nil,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "herald unavailable: "+err.Error(), http.StatusBadGateway)
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.url = "http://" + ln.Addr().String()
	g.srv = &http.Server{
		Handler:  g,
		ErrorLog: nil,
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateHijacked {
				g.mu.Lock()
				g.hijacked[c] = true
				g.mu.Unlock()
			}
		},
	}
	go g.srv.Serve(ln)
	t.Cleanup(func() { g.srv.Close(); g.cut() })
	return g
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.hold.Load() {
		http.Error(w, "backend unavailable (test proxy on hold)", http.StatusBadGateway)
		return
	}
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		if g.blockWS.Load() {
			g.refused.Add(1)
			http.Error(w, "WebSocket blocked by the test proxy", http.StatusForbidden)
			return
		}
		g.upgrades.Add(1)
	}
	g.rp.ServeHTTP(w, r)
}

// block refuses (true) or allows WebSocket upgrades; blocking also cuts
// the WebSockets already open, as a proxy restart would.
func (g *gate) block(on bool) {
	g.blockWS.Store(on)
	if on {
		g.cut()
	}
}

func (g *gate) cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for c := range g.hijacked {
		c.Close()
		delete(g.hijacked, c)
	}
}

type sseEvent = ssetest.Event

// sseStream is an open event stream, read in the background, and its
// response.
type sseStream struct {
	*ssetest.Stream
	resp *http.Response
}

// openSSE opens rawURL as an event stream (failing t unless it answers
// 200) and reads it in the background.
func openSSE(t testing.TB, client *http.Client, rawURL string, header http.Header) *sseStream {
	t.Helper()
	req, _ := http.NewRequest("GET", rawURL, nil)
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range header {
		req.Header[k] = v
	}
	if client == nil {
		client = &http.Client{}
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s: %d %s", rawURL, resp.StatusCode, b)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sseStream{Stream: ssetest.NewStream(resp.Body), resp: resp}
}

// tlsClient returns an HTTP client that trusts pool only.
func tlsClient(cfg *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// http11Client makes one plain request and reports the status.
type http11Client struct{}

func (http11Client) get(u string) (int, error) {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(u)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
