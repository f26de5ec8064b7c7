package e2e

import (
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/internal/heraldtest"
)

// readmeSnippet returns the js code block after the README marker
// "<!-- snippet: name", with Herald's dev address replaced by addr.
func readmeSnippet(t *testing.T, name, addr string) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "<!-- snippet: "+name)
	if i < 0 {
		t.Fatalf("README.md has no snippet %q", name)
	}
	s = s[i:]
	start := strings.Index(s, "```js\n")
	end := strings.Index(s[start+6:], "```")
	if start < 0 || end < 0 {
		t.Fatalf("snippet %q: no js code block", name)
	}
	return strings.ReplaceAll(s[start+6:start+6+end], "127.0.0.1:8000", addr)
}

// devOrigins returns server.allowed_origins from configs/dev.yaml.
func devOrigins(t *testing.T) []string {
	t.Helper()
	fs := config.Flags()
	if err := fs.Parse([]string{"--config", "../configs/dev.yaml"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(fs, nil)
	if err != nil {
		t.Fatalf("configs/dev.yaml: %v", err)
	}
	return cfg.Server.AllowedOrigins
}

// otherOrigin serves a blank page on another local port and returns its
// URL with host localhost (a different origin from Herald's 127.0.0.1).
func otherOrigin(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><title>app on another port</title><p>frontend dev server</p>`))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return "http://localhost:" + port
}

// TestReadmeBrowserSnippets: the README's browser-console snippets run as
// written (Herald's address aside) in a page of another local origin, with
// the origins configs/dev.yaml allows: herald.js and the guide's plain
// WebSocket and EventSource receive the workflow.
func TestReadmeBrowserSnippets(t *testing.T) {
	origins := devOrigins(t)
	n := startHerald(t, func(c *config.Config) { c.Server.AllowedOrigins = origins }, nil)
	b := startBrowser(t)
	p := b.newPage()
	p.navigate(otherOrigin(t) + "/")
	p.mustEval(`(async () => {
`+readmeSnippet(t, "browser-herald", n.Addr)+`
window.got = [];
client.on("*", (d) => got.push(d.type));
})()`, nil)
	p.mustEval(`(async () => {
`+readmeSnippet(t, "browser-plain", n.Addr)+`
window.plainWS = []; window.plainSSE = [];
ws.addEventListener("message", (e) => plainWS.push(JSON.parse(e.data).type));
es.addEventListener("message", (e) => plainSSE.push(JSON.parse(e.data).type));
})()`, nil)
	p.waitFor(`got[0] === "connection_established" && plainWS[0] === "connection_established" && plainSSE[0] === "connection_established"`, 20*time.Second)
	for _, m := range workflow(610) {
		publish(t, nil, "http://"+n.Addr, "42", m)
	}
	p.waitFor(`got.length === 8 && plainWS.length === 8 && plainSSE.length === 8`, 15*time.Second)
	var got struct{ Got, WS, SSE []string }
	p.mustEval(`({got, ws: plainWS, sse: plainSSE})`, &got)
	want := []string{"connection_established", "oracle_upload_started"}
	for range 5 {
		want = append(want, "oracle_upload_progress")
	}
	want = append(want, "oracle_upload_completed")
	if !reflect.DeepEqual(got.Got, want) || !reflect.DeepEqual(got.WS, want) || !reflect.DeepEqual(got.SSE, want) {
		t.Fatalf("herald.js %v, WebSocket %v, EventSource %v; want %v", got.Got, got.WS, got.SSE, want)
	}
}

// TestOriginRefusalVisible: a page of an origin Herald does not allow sees
// why: herald.js reports origin_not_allowed (read from the event stream's
// 403 body, after the WebSocket's bare 1006) and stops reconnecting.
func TestOriginRefusalVisible(t *testing.T) {
	n := startHerald(t, nil, nil) // no allowed_origins
	b := startBrowser(t)
	p := b.newPage()
	p.navigate(otherOrigin(t) + "/")
	p.mustEval(`(async () => {
  const { HeraldClient } = await import("http://`+n.Addr+`/herald.js");
  window.errs = [];
  window.c = new HeraldClient({ url: "http://`+n.Addr+`", token: `+jsString(heraldtest.Token(t, "42"))+`, minDelay: 50, maxDelay: 100 });
  c.lifecycle.on("error", (e) => errs.push(e.code));
  c.connect();
})()`, nil)
	p.waitFor(`errs.includes("origin_not_allowed") && c.state === "closed"`, 20*time.Second)
	time.Sleep(500 * time.Millisecond)
	var errs []string
	p.mustEval(`errs`, &errs)
	if len(errs) != 1 {
		t.Fatalf("errors %v: want one origin_not_allowed, then no more attempts", errs)
	}
}
