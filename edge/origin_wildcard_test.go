package edge

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
)

// TestOriginPortWildcard: "http://localhost:*"-style entries allow any port
// of that loopback origin (scheme and host must match), nothing else; an
// event stream's refusal carries CORS headers so the page can read its
// origin_not_allowed body.
func TestOriginPortWildcard(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Server.AllowedOrigins = []string{"http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"}
	})
	tok := token(t, "o", time.Hour)
	for origin, ok := range map[string]bool{
		"http://localhost:3000":      true,
		"http://LOCALHOST:5173":      true,
		"http://127.0.0.1:8080":      true,
		"http://[::1]:3000":          true,
		"http://localhost":           false, // no port: not what the wildcard names
		"https://localhost:3000":     false, // another scheme
		"http://localhost.evil:3000": false,
		"http://127.0.0.2:3000":      false,
		"http://evil.example:3000":   false,
		"http://localhost:*":         false,
	} {
		h := http.Header{"Origin": {origin}}
		c, resp, err := ts.dialWS(t, q("token", tok), h)
		if ok != (err == nil) {
			t.Fatalf("WebSocket origin %q: err %v, want allowed %v", origin, err, ok)
		}
		if err == nil {
			c.Close()
		} else if resp == nil || resp.StatusCode != 403 {
			t.Fatalf("WebSocket origin %q: want 403, got %v", origin, resp)
		}
		req, _ := http.NewRequest("GET", "http://"+ts.addr+"/sse/notifications/?"+q("token", tok), nil)
		req.Header.Set("Origin", origin)
		sresp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			sresp.Body.Close()
			if sresp.StatusCode != 200 {
				t.Fatalf("SSE origin %q: %d, want 200", origin, sresp.StatusCode)
			}
			continue
		}
		body, _ := io.ReadAll(sresp.Body)
		sresp.Body.Close()
		var e struct{ Error string }
		_ = json.Unmarshal(body, &e)
		if sresp.StatusCode != 403 || e.Error != "origin_not_allowed" || sresp.Header.Get("Access-Control-Allow-Origin") != origin {
			t.Fatalf("SSE origin %q: %d %s %v: want a 403 origin_not_allowed the page can read", origin, sresp.StatusCode, body, sresp.Header)
		}
	}
}

// TestOriginWildcardConfig: a port wildcard on a non-loopback origin is a
// config error naming the key.
func TestOriginWildcardConfig(t *testing.T) {
	for o, ok := range map[string]bool{
		"http://localhost:*": true, "https://127.0.0.1:*": true, "http://[::1]:*": true,
		"https://app.example.com:*": false, "http://localhost:3000:*": false, "localhost:*": false, "http://localhost/x:*": false,
	} {
		cfg := testConfig()
		cfg.Server.AllowedOrigins = []string{o}
		err := cfg.Validate()
		if ok != (err == nil) {
			t.Fatalf("allowed_origins %q: %v", o, err)
		}
		if err != nil && !strings.Contains(err.Error(), "server.allowed_origins") {
			t.Fatalf("error does not name the key: %v", err)
		}
	}
}
