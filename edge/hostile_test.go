package edge

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

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
// connection with a close frame 1002, written by Herald, and nothing else
// is affected. A server that ignored the read error (or closed without a
// close frame) fails: closeCode needs the frame within the deadline.
func TestGarbageAfterHandshake(t *testing.T) {
	ts := startServer(t, nil)
	other := ts.mustWS(t, q("token", token(t, "ok", time.Hour)))
	readWS(t, other)

	c := dialRawWS(t, ts, "g")
	if f, err := c.next(); err != nil || !bytes.Contains(f.payload, []byte("connection_established")) {
		t.Fatalf("first frame: %v %q", err, f.payload)
	}
	// Unmasked frame with reserved bits set, then junk.
	start := time.Now()
	_, _ = c.conn.Write([]byte{0xF1, 0x7F, 0xde, 0xad, 0xbe, 0xef, 'j', 'u', 'n', 'k'})
	if code, reason := c.closeCode(t, 5*time.Second); code != 1002 || reason != "protocol_error" {
		t.Fatalf("close %d %q, want 1002 protocol_error", code, reason)
	}
	// Then the server closes the socket, well before any read timeout.
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c.r); err != nil && !isConnReset(err) {
		t.Fatalf("after the close frame: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("connection closed after %v", d)
	}
	ts.publishTo(t, "ok", `{"still":"fine"}`)
	if got := string(readWS(t, other)); got != `{"still":"fine"}` {
		t.Fatalf("other connection affected: %s", got)
	}
}

// TestFragmentedMessages: a message split over continuation frames (raw
// frames, so the fragmentation is certain), with a ping between two of
// them as RFC 6455 allows, is reassembled; fragments that together exceed
// the read limit close with 1009.
func TestFragmentedMessages(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Stream.WSReadLimit = 1024 })
	c := dialRawWS(t, ts, "f")
	if _, err := c.next(); err != nil {
		t.Fatal(err)
	}
	var msg []byte
	msg = append(msg, frame(0x01, []byte(`{"type":`), false)...)       // text, FIN clear
	msg = append(msg, frame(0x00, []byte(`"ping",`), false)...)        // continuation
	msg = append(msg, frame(0x89, []byte("between"), false)...)        // ping inside the message
	msg = append(msg, frame(0x80, []byte(`"timestamp":7}`), false)...) // final continuation
	if _, err := c.conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var pong, reply bool
	for !pong || !reply {
		f, err := c.next()
		if err != nil {
			t.Fatalf("reading replies: %v", err)
		}
		switch {
		case f.op == 0xA && string(f.payload) == "between":
			pong = true
		case f.op == 0x1 && string(f.payload) == `{"type":"pong","timestamp":7}`:
			reply = true
		case f.op == 0x9: // a keepalive ping
		default:
			t.Fatalf("unexpected frame op %#x %q", f.op, f.payload)
		}
	}
	// 1 + 10 fragments of 100 bytes: each below the limit, together above.
	msg = frame(0x01, bytes.Repeat([]byte("a"), 100), false)
	for range 10 {
		msg = append(msg, frame(0x00, bytes.Repeat([]byte("a"), 100), false)...)
	}
	_, _ = c.conn.Write(msg)
	if code, _ := c.closeCode(t, 5*time.Second); code != 1009 {
		t.Fatalf("close %d, want 1009", code)
	}
}
