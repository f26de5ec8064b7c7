package edge

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/edge/auth"
	"github.com/heraldrt/herald/internal/heraldtest"
	"github.com/heraldrt/herald/internal/ssetest"
)

const (
	testSecret = "test-secret-0123456789abcdef0123456789"
	testAPIKey = "test-api-key-0123456789"
)

// testServer is a Herald node on a loopback port.
type testServer struct {
	srv  *Server
	cfg  config.Config
	addr string
	done chan error
}

// parkAll runs every test server with server.netpoll on:
//
//	go test -run 'TestX' ./edge -args -netpoll
var parkAll = flag.Bool("netpoll", false, "start the tests' servers with server.netpoll: true")

func testConfig() config.Config { return heraldtest.Config(testSecret, testAPIKey) }

func testLogger(t testing.TB) *slog.Logger { return heraldtest.Logger() }

func startServer(t testing.TB, mutate func(*config.Config), opts ...Option) *testServer {
	t.Helper()
	return startServerWith(t, testLogger(t), mutate, opts...)
}

// startServerWith is startServer logging to log.
func startServerWith(t testing.TB, log *slog.Logger, mutate func(*config.Config), opts ...Option) *testServer {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	if *parkAll {
		cfg.Server.Netpoll = true
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	srv, err := New(context.Background(), cfg, log, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{srv: srv, cfg: cfg, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ln) }()
	t.Cleanup(func() { ts.shutdown(t) })
	return ts
}

func (ts *testServer) shutdown(t testing.TB) {
	if ts.srv.life.draining.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func token(t testing.TB, sub string, ttl time.Duration, channels ...string) string {
	t.Helper()
	tok, err := auth.Sign(testSecret, "HS256", sub, ttl, channels)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// publish posts body to path and returns the status and decoded reply.
func (ts *testServer) post(t testing.TB, path, key, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+ts.addr+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("POST %s: reply %q is not JSON: %v", path, b, err)
	}
	return resp.StatusCode, out
}

// publish publishes one message and fails the test unless it succeeds.
func (ts *testServer) publish(t testing.TB, body string) map[string]any {
	t.Helper()
	code, out := ts.post(t, "/api/publish", testAPIKey, body)
	if code != 200 {
		t.Fatalf("publish %s: %d %v", body, code, out)
	}
	return out
}

func (ts *testServer) publishTo(t testing.TB, user string, data string) {
	t.Helper()
	ts.publish(t, `{"user_id":"`+user+`","data":`+data+`}`)
}

// dialWS opens a WebSocket; query is appended to the endpoint.
func (ts *testServer) dialWS(t testing.TB, query string, header http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial("ws://"+ts.addr+"/ws/notifications/?"+query, header)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

func (ts *testServer) mustWS(t testing.TB, query string) *websocket.Conn {
	t.Helper()
	c, resp, err := ts.dialWS(t, query, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial ws: %v (status %d)", err, status)
	}
	return c
}

// readWS reads one text message within timeout.
func readWS(t testing.TB, c *websocket.Conn) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	mt, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read ws: %v", err)
	}
	if mt != websocket.TextMessage {
		t.Fatalf("read ws: message type %d", mt)
	}
	return b
}

func readWSJSON(t testing.TB, c *websocket.Conn) map[string]any {
	t.Helper()
	b := readWS(t, c)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("ws message %q: %v", b, err)
	}
	return m
}

// sseEvent is one parsed Server-Sent Event.
type sseEvent = ssetest.Event

// sseClient reads an event stream the way EventSource does
// (ssetest.Stream), with this package's timeouts.
type sseClient struct {
	resp   *http.Response
	stream *ssetest.Stream
	events <-chan sseEvent // every block, retry-only ones too; closed at the end
}

// newSSEClient starts reading resp's event stream.
func newSSEClient(resp *http.Response) *sseClient {
	s := ssetest.NewStream(resp.Body)
	return &sseClient{resp: resp, stream: s, events: s.Events()}
}

func (ts *testServer) openSSE(t testing.TB, query, lastEventID string) (*sseClient, *http.Response, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+ts.addr+"/sse/notifications/?"+query, nil)
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != 200 {
		return nil, resp, nil
	}
	c := newSSEClient(resp)
	t.Cleanup(func() { resp.Body.Close() })
	return c, resp, nil
}

func (ts *testServer) mustSSE(t testing.TB, query, lastEventID string) *sseClient {
	t.Helper()
	c, resp, err := ts.openSSE(t, query, lastEventID)
	if err != nil {
		t.Fatalf("open sse: %v", err)
	}
	if c == nil {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("open sse: status %d: %s", resp.StatusCode, b)
	}
	return c
}

// next returns the next event with data (skipping retry-only events).
func (c *sseClient) next(t testing.TB) sseEvent { t.Helper(); return c.stream.Next(t, 5*time.Second) }

func (c *sseClient) nextJSON(t testing.TB) (sseEvent, map[string]any) {
	t.Helper()
	return c.stream.NextJSON(t, 5*time.Second)
}

// ended waits for the stream to end.
func (c *sseClient) ended(t testing.TB) []sseEvent {
	t.Helper()
	return c.stream.Ended(t, 10*time.Second)
}

func q(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v.Encode()
}

func (ts *testServer) get(t testing.TB, path string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get("http://" + ts.addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("GET %s: %q: %v", path, b, err)
	}
	return resp.StatusCode, out
}

func websocketCloseCode(err error, code int) bool {
	ce, ok := err.(*websocket.CloseError)
	return ok && ce.Code == code
}

// requireInCI skips a test whose outside dependency is missing, except in
// CI (CI=true), where .ci/run installs it and its absence is a failure.
func requireInCI(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }
