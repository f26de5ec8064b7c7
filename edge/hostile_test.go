package edge

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/config"
)

func TestOriginPolicy(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Server.AllowedOrigins = []string{"https://app.example.com"} })
	tok := token(t, "o", time.Hour)
	cases := []struct {
		origin string
		ok     bool
	}{
		{"", true}, // not a browser
		{"https://app.example.com", true},
		{"http://" + ts.addr, true}, // same host
		{"https://evil.example.net", false},
		{"null", false},
	}
	for _, tc := range cases {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		c, resp, err := ts.dialWS(t, q("token", tok), h)
		if tc.ok != (err == nil) {
			t.Fatalf("origin %q: err %v", tc.origin, err)
		}
		if err == nil {
			c.Close()
		} else if resp == nil || resp.StatusCode != 403 {
			t.Fatalf("origin %q: want 403, got %v", tc.origin, resp)
		}
		req, _ := http.NewRequest("GET", "http://"+ts.addr+"/sse/notifications/?"+q("token", tok), nil)
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		sresp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		sresp.Body.Close()
		if want := map[bool]int{true: 200, false: 403}[tc.ok]; sresp.StatusCode != want {
			t.Fatalf("sse origin %q: %d, want %d", tc.origin, sresp.StatusCode, want)
		}
		if tc.ok && tc.origin != "" && sresp.Header.Get("Access-Control-Allow-Origin") != tc.origin {
			t.Fatalf("sse origin %q: no CORS header", tc.origin)
		}
	}
}

// TestGarbageAfterHandshake: bytes that are not WebSocket frames end that
// connection (1002) and nothing else.
func TestGarbageAfterHandshake(t *testing.T) {
	ts := startServer(t, nil)
	other := ts.mustWS(t, q("token", token(t, "ok", time.Hour)))
	readWS(t, other)

	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET /ws/notifications/?" + q("token", token(t, "g", time.Hour)) + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	status, _ := r.ReadString('\n')
	if !strings.Contains(status, "101") {
		t.Fatalf("handshake: %q", status)
	}
	// Unmasked frame with reserved bits set, then junk.
	_, _ = conn.Write([]byte{0xF1, 0x7F, 0xde, 0xad, 0xbe, 0xef, 'j', 'u', 'n', 'k'})
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	for {
		if _, err := r.Read(buf); err != nil {
			break // closed by the server
		}
	}
	ts.publishTo(t, "ok", `{"still":"fine"}`)
	if got := string(readWS(t, other)); got != `{"still":"fine"}` {
		t.Fatalf("other connection affected: %s", got)
	}
}

// TestFragmentedMessages: a message split over continuation frames is
// reassembled; a fragmented flood over the read limit closes with 1009.
func TestFragmentedMessages(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Stream.WSReadLimit = 1024 })
	c := ts.mustWS(t, q("token", token(t, "f", time.Hour)))
	readWS(t, c)
	w, _ := c.NextWriter(websocket.TextMessage)
	for _, part := range []string{`{"type":`, `"ping",`, `"timestamp":7}`} {
		_, _ = w.Write([]byte(part))
	}
	_ = w.Close()
	if got := string(readWS(t, c)); got != `{"type":"pong","timestamp":7}` {
		t.Fatalf("fragmented ping: %s", got)
	}
	w, _ = c.NextWriter(websocket.TextMessage)
	for range 100 {
		if _, err := w.Write([]byte(strings.Repeat("a", 100))); err != nil {
			break
		}
	}
	_ = w.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
				t.Fatalf("want 1009, got %v", err)
			}
			return
		}
	}
}
