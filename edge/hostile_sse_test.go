package edge

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/config"
)

// Hostile-input suite, SSE request surface (the connect path WebSocket
// shares: tokens, origins, cursors, filters, request heads): every case is
// a request a hostile page or client could send, with the answer Herald
// must give and the bound it must hold. docs/SECURITY.md lists the table.

// signClaims signs claims with the test secret; typ, when set, is the
// header's "typ".
func signClaims(t testing.TB, claims jwt.MapClaims, typ string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	if typ != "" {
		tok.Header["typ"] = typ
	}
	s, err := tok.SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHostileSSERequests(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Server.AllowedOrigins = []string{"https://app.example.com"}
		c.Server.ReadBufferSize = 4096
	})
	exp := time.Now().Add(time.Hour).Unix()
	good := token(t, "h1", time.Hour)
	noneTok := base64URL(`{"alg":"none","typ":"JWT"}`) + "." + base64URL(`{"sub":"h1","exp":9999999999}`) + "."
	cases := []struct {
		name   string
		method string
		query  string
		header map[string]string
		status int
		reason string        // "error" of the JSON reply
		maxCPU time.Duration // process CPU for the request (bound)
	}{
		{"no token", "GET", "", nil, 401, "missing_token", 200 * time.Millisecond},
		{"forged token", "GET", q("token", signWithMust(t, "not-the-secret-0123456789abcdef0123", "h1")), nil, 401, "invalid_signature", 200 * time.Millisecond},
		{"alg none", "GET", q("token", noneTok), nil, 401, "unsupported_algorithm", 200 * time.Millisecond},
		{"expired token", "GET", q("token", token(t, "h1", -time.Hour)), nil, 401, "token_expired", 200 * time.Millisecond},
		{"refresh token (token_type claim)", "GET", q("token", signClaims(t, jwt.MapClaims{"sub": "h1", "exp": exp, "token_type": "refresh"}, "")), nil, 401, "wrong_token_type", 200 * time.Millisecond},
		{"refresh token (typ header)", "GET", q("token", signClaims(t, jwt.MapClaims{"sub": "h1", "exp": exp}, "refresh")), nil, 401, "wrong_token_type", 200 * time.Millisecond},
		{"refresh token (typ claim)", "GET", q("token", signClaims(t, jwt.MapClaims{"sub": "h1", "exp": exp, "typ": "Refresh_Token"}, "")), nil, 401, "wrong_token_type", 200 * time.Millisecond},
		{"user claim with a colon", "GET", q("token", signClaims(t, jwt.MapClaims{"sub": "4:2", "exp": exp}, "")), nil, 401, "missing_user", 200 * time.Millisecond},
		{"token over 8 KiB in a cookie", "GET", "", map[string]string{"Cookie": "herald_token=" + strings.Repeat("a", 3000)}, 401, "malformed_token", 200 * time.Millisecond},
		{"origin of another site", "GET", q("token", good), map[string]string{"Origin": "https://evil.example.net"}, 403, "origin_not_allowed", 200 * time.Millisecond},
		{"origin null", "GET", q("token", good), map[string]string{"Origin": "null"}, 403, "origin_not_allowed", 200 * time.Millisecond},
		{"same host, other scheme", "GET", q("token", good), map[string]string{"Origin": "https://" + ts.addr}, 403, "origin_not_allowed", 200 * time.Millisecond},
		{"allowed host, other scheme", "GET", q("token", good), map[string]string{"Origin": "http://app.example.com"}, 403, "origin_not_allowed", 200 * time.Millisecond},
		{"allowed host, other port", "GET", q("token", good), map[string]string{"Origin": "https://app.example.com:8443"}, 403, "origin_not_allowed", 200 * time.Millisecond},
		{"origin with userinfo", "GET", q("token", good), map[string]string{"Origin": "https://app.example.com@evil.example.net"}, 403, "origin_not_allowed", 200 * time.Millisecond},
		{"forwarded proto from an untrusted peer", "GET", q("token", good), map[string]string{"Origin": "https://" + ts.addr, "X-Forwarded-Proto": "https"}, 403, "origin_not_allowed", 200 * time.Millisecond},
		{"garbage cursor", "GET", q("token", good, "since", "!!!not-a-cursor"), nil, 400, "bad_cursor", 200 * time.Millisecond},
		{"garbage Last-Event-ID", "GET", q("token", good), map[string]string{"Last-Event-ID": strings.Repeat("\xff", 64)}, 400, "bad_cursor", 200 * time.Millisecond},
		{"too many type patterns", "GET", q("token", good, "types", strings.TrimSuffix(strings.Repeat("a*,", 200), ",")), nil, 400, "bad_filter", 200 * time.Millisecond},
		{"POST", "POST", q("token", good), nil, 405, "method_not_allowed", 200 * time.Millisecond},
		{"head over read_buffer_size", "GET", q("token", good), map[string]string{"X-Pad": strings.Repeat("p", 5000)}, 431, "header_too_large", 200 * time.Millisecond},
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			send := func() (*http.Response, []byte) {
				req, _ := http.NewRequest(tc.method, "http://"+ts.addr+"/sse/notifications/?"+tc.query, nil)
				for k, v := range tc.header {
					req.Header.Set(k, v)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp, b
			}
			cpu := cpuTime(t)
			resp, b := send()
			used := cpuTime(t) - cpu
			var out map[string]any
			_ = json.Unmarshal(b, &out)
			if resp.StatusCode != tc.status || out["error"] != tc.reason {
				t.Fatalf("%d %s, want %d %s", resp.StatusCode, b, tc.status, tc.reason)
			}
			if over, used := overCPU(t, used, tc.maxCPU, func() { send() }); over {
				t.Fatalf("request cost %s of CPU (least of 3), bound %s", used, tc.maxCPU)
			}
		})
	}
	// A burst of refused connects costs bounded memory.
	rss := rssBytes(t)
	for range 300 {
		resp, err := client.Get("http://" + ts.addr + "/sse/notifications/?" + q("token", good, "since", "bad"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if grown := rssBytes(t) - rss; grown > 32<<20 {
		t.Fatalf("300 refused connects grew RSS by %d MiB (bound 32)", grown>>20)
	}
}

func signWithMust(t testing.TB, secret, sub string) string {
	t.Helper()
	s, err := signWith(secret, sub, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func base64URL(s string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// TestOriginSchemeBehindTrustedProxy: behind a trusted TLS-terminating
// proxy, X-Forwarded-Proto gives the request's scheme, so the page's own
// https origin is allowed and its http twin is not.
func TestOriginSchemeBehindTrustedProxy(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Limits.TrustedProxies = []string{"127.0.0.1"} })
	tok := token(t, "p1", time.Hour)
	for origin, want := range map[string]int{"https://" + ts.addr: 200, "http://" + ts.addr: 403} {
		req, _ := http.NewRequest("GET", "http://"+ts.addr+"/sse/notifications/?"+q("token", tok), nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("X-Forwarded-Proto", "https")
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("origin %s: %d, want %d", origin, resp.StatusCode, want)
		}
	}
}

// TestRefreshNeverWidens: a WebSocket refresh with a token that grants
// fewer channels than the connection has closes it (4003
// channels_revoked, so the client reconnects with the narrower set); one
// that grants more keeps the connection's channels (no widening).
func TestRefreshNeverWidens(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.mustWS(t, q("token", token(t, "r1", time.Hour, "team:1")))
	readWS(t, c)
	// More channels: refreshed, but team:2 is not delivered.
	_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"refresh","token":"`+token(t, "r1", 2*time.Hour, "team:1", "team:2")+`"}`))
	if m := readWSJSON(t, c); m["type"] != "refreshed" {
		t.Fatalf("refresh with more channels: %v", m)
	}
	ts.publish(t, `{"channel":"team:2","data":{"n":2}}`)
	ts.publish(t, `{"channel":"team:1","data":{"n":1}}`)
	if m := readWSJSON(t, c); m["n"] != 1.0 {
		t.Fatalf("after a widening refresh the connection got %v (team:2 must not be delivered)", m)
	}
	// Fewer channels: the connection ends with channels_revoked.
	_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"refresh","token":"`+token(t, "r1", 2*time.Hour)+`"}`))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			if !websocketCloseCode(err, 4003) {
				t.Fatalf("want close 4003, got %v", err)
			}
			break
		}
		if strings.Contains(string(b), `"n":`) {
			t.Fatalf("message after a narrowing refresh: %s", b)
		}
	}
	// The old behaviour kept team:1 and went on delivering it.
}

// TestAnyOriginNeedsExplicitConsent: allowed_origins ["*"] with cookie
// auth is refused at load unless allow_any_origin_with_credentials says so.
func TestAnyOriginNeedsExplicitConsent(t *testing.T) {
	cfg := testConfig()
	cfg.Server.AllowedOrigins = []string{"*"}
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "server.allowed_origins") || !strings.Contains(err.Error(), "allow_any_origin_with_credentials") {
		t.Fatalf("validate: %v", err)
	}
	cfg.Server.AllowAnyOriginWithCredentials = true
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
