package edge

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogsNeverContainSecrets runs connects (good, expired, forged),
// refreshes and publishes with debug JSON logs and checks that no token,
// HMAC secret or API key appears in them.
func TestLogsNeverContainSecrets(t *testing.T) {
	var logs syncBuffer
	cfg := testConfig()
	srv, err := New(context.Background(), cfg, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ts := &testServer{srv: srv, cfg: cfg, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ln) }()
	defer ts.shutdown(t)

	good := token(t, "s1", time.Hour)
	expired := token(t, "s1", -time.Hour)
	forged, _ := signWith("not-the-secret-0123456789abcdef0123", "s1", time.Hour)
	c := ts.mustWS(t, q("token", good))
	readWS(t, c)
	_ = c.WriteMessage(1, []byte(`{"type":"refresh","token":"`+forged+`"}`))
	readWS(t, c)
	ts.dialWS(t, q("token", expired), nil)
	ts.dialWS(t, q("token", forged), nil)
	ts.openSSE(t, q("token", forged), "")
	ts.post(t, "/api/publish", "wrong-key-0123456789", `{"user_id":"s1","data":{}}`)
	ts.publishTo(t, "s1", `{"x":1}`)
	readWS(t, c)
	c.Close()
	time.Sleep(100 * time.Millisecond)

	out := logs.String()
	if !strings.Contains(out, "connection refused") {
		t.Fatal("expected refusal log lines")
	}
	for name, secret := range map[string]string{
		"good token": good, "expired token": expired, "forged token": forged,
		"hmac secret": testSecret, "api key": testAPIKey, "wrong api key": "wrong-key-0123456789",
		"token signature": good[strings.LastIndexByte(good, '.')+1:],
	} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain the %s", name)
		}
	}
}

// TestLogsNeverContainSecretsMalformed sends requests Herald cannot parse
// (and some it refuses), each carrying an API key, an admin key, tokens in
// query, header and cookie and a session cookie, over raw sockets to the
// main and the admin listener, with debug JSON logs: no secret may appear.
// fasthttp used to log such requests at WARN with the raw head.
func TestLogsNeverContainSecretsMalformed(t *testing.T) {
	var logs syncBuffer
	const adminKey = "admin-key-secret-0123456789"
	const sessionID = "sessionsecret0123456789abcdef"
	const wrongKey = "wrong-api-key-secret-0123456789"
	ts := startServerLogs(t, &logs, func(c *config.Config) {
		c.Admin.Key = adminKey
		c.Server.HandshakeTimeout = 400 * time.Millisecond
		c.Server.ReadBufferSize = 2048
		c.API.MaxBodyBytes = 4096
	})
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ts.srv.ServeAdmin(aln)

	qtok, htok, ctok := token(t, "q1", time.Hour), token(t, "h1", time.Hour), token(t, "c1", time.Hour)
	creds := "X-API-Key: " + testAPIKey + "\r\nX-Admin-Key: " + adminKey + "\r\nAuthorization: Bearer " + htok +
		"\r\nCookie: herald_token=" + ctok + "; sessionid=" + sessionID + "\r\n"
	path := "/sse/notifications/?token=" + qtok
	cases := map[string]string{
		"duplicate Content-Length":   "POST /api/publish?token=" + qtok + " HTTP/1.1\r\nHost: x\r\n" + creds + "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
		"header line without colon":  "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + creds + "this is not a header\r\n\r\n",
		"space before colon":         "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + creds + "Bad : x\r\n\r\n",
		"garbage request line":       "\x16\x03\x01 " + path + " " + creds + "\r\n\r\n",
		"bad version":                "GET " + path + " HTTP/9.9\r\nHost: x\r\n" + creds + "\r\n",
		"bad Content-Length":         "POST /api/publish HTTP/1.1\r\nHost: x\r\n" + creds + "Content-Length: 12x\r\n\r\n{}",
		"bad chunk size":             "POST /api/publish HTTP/1.1\r\nHost: x\r\n" + creds + "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
		"chunked and Content-Length": "POST /api/publish HTTP/1.1\r\nHost: x\r\n" + creds + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
		"NUL in a header":            "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + creds + "X-Bad: a\x00b\r\n\r\n",
		"head too large":             "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + creds + "X-Pad: " + strings.Repeat("p", 4096) + "\r\n\r\n",
		"body too large":             "POST /api/publish HTTP/1.1\r\nHost: x\r\n" + creds + "Content-Length: 9000\r\n\r\n" + strings.Repeat("b", 9000),
		"head cut by the timeout":    "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + creds,
		"HTTP/2 preface":             "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + creds,
		"wrong API key":              "POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: apikey " + wrongKey + "\r\nContent-Length: 2\r\n\r\n{}",
		"bad cursor with tokens":     "GET /sse/notifications/?since=%ff%fe&token=" + qtok + " HTTP/1.1\r\nHost: x\r\n" + creds + "\r\n",
	}
	for name, req := range cases {
		for _, addr := range []string{ts.addr, aln.Addr().String()} {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write([]byte(req)); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if name != "head cut by the timeout" {
				// No more requests on this connection: Herald answers and
				// closes instead of waiting for the next one.
				_ = c.(*net.TCPConn).CloseWrite()
			}
			// Read until Herald closes (answer, refusal or timeout).
			if _, err := io.Copy(io.Discard, c); err != nil && !strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "timeout") {
				t.Fatalf("%s: %v", name, err)
			}
			c.Close()
		}
	}
	time.Sleep(200 * time.Millisecond) // let the last lines be written
	out := logs.String()
	if !strings.Contains(out, "request refused") && !strings.Contains(out, "bad request") {
		t.Fatalf("expected log lines about the malformed requests:\n%s", out)
	}
	for name, secret := range map[string]string{
		"api key": testAPIKey, "admin key": adminKey, "session cookie": sessionID, "wrong api key": wrongKey,
		"query token": qtok, "header token": htok, "cookie token": ctok, "hmac secret": testSecret,
		"query token signature":  qtok[strings.LastIndexByte(qtok, '.')+1:],
		"header token signature": htok[strings.LastIndexByte(htok, '.')+1:],
		"cookie token signature": ctok[strings.LastIndexByte(ctok, '.')+1:],
	} {
		if i := strings.Index(out, secret); i >= 0 {
			t.Errorf("logs contain the %s: …%s…", name, out[max(0, i-200):min(len(out), i+50)])
		}
	}
}

// TestRedactor: the redactor scrubs the shapes a raw request quoted in an
// error takes (what fasthttp logs without SecureErrorLogMessage).
func TestRedactor(t *testing.T) {
	cfg := testConfig()
	cfg.Admin.Key = "admin-key-secret-0123456789"
	r := newRedactor(cfg)
	jwt := token(t, "r1", time.Hour)
	cases := []string{
		fmt.Sprintf("error when reading request headers: cannot find colon: buffer size=300, contents: %q", "GET /ws/?token="+jwt+" HTTP/1.1\r\nX-API-Key: "+testAPIKey+"\r\nCookie: sessionid=abcdefgh12345678; herald_token="+jwt+"\r\n"),
		"GET /sse/notifications/?since=1&token=" + jwt + "&x=1",
		"Authorization: Bearer " + jwt,
		"authorization: apikey " + testAPIKey,
		"x-admin-key: " + cfg.Admin.Key,
		"backend said: sessionid=abcdefgh12345678 invalid",
		"tok " + jwt,
	}
	for _, c := range cases {
		got := r.String(c)
		for _, secret := range []string{jwt, testAPIKey, cfg.Admin.Key, "abcdefgh12345678", jwt[strings.LastIndexByte(jwt, '.')+1:]} {
			if strings.Contains(got, secret) {
				t.Errorf("redact(%q) = %q still holds a secret", c, got)
			}
		}
		if !strings.Contains(got, redacted) {
			t.Errorf("redact(%q) = %q: nothing redacted", c, got)
		}
	}
	if got := r.String("user 42 connected from 10.0.0.1"); got != "user 42 connected from 10.0.0.1" {
		t.Errorf("plain text changed: %q", got)
	}
}

// BenchmarkRedactLine: the redactor's cost on one typical refusal line's
// attribute and on a quoted malformed request.
func BenchmarkRedactLine(b *testing.B) {
	r := newRedactor(testConfig())
	for name, s := range map[string]string{
		"detail":  "token is expired by 3m2s",
		"request": fmt.Sprintf("error when reading request headers: cannot find colon: contents: %q", "GET /sse/notifications/?token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJlc2lnbmF0dXJl HTTP/1.1\r\nCookie: sessionid=abc\r\n"),
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = r.String(s)
			}
		})
	}
}
