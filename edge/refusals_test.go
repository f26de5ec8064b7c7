package edge

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/redistest"
)

// checkRefusal asserts that a refused connect answered status with the JSON
// body {"error": reason, "message": ...}.
func checkRefusal(t *testing.T, what string, resp *http.Response, status int, reason string) {
	t.Helper()
	if resp == nil {
		t.Fatalf("%s: no HTTP response, want %d %s", what, status, reason)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var body struct{ Error, Message string }
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("%s: body %q is not JSON: %v", what, b, err)
	}
	if resp.StatusCode != status || body.Error != reason || body.Message == "" {
		t.Fatalf("%s: got %d %q, want %d with error %q and a message", what, resp.StatusCode, b, status, reason)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: Content-Type %q", what, ct)
	}
}

// refusedBoth tries a WebSocket and an SSE connect with query and checks
// both are refused with status and reason.
func refusedBoth(t *testing.T, ts *testServer, query string, header http.Header, status int, reason string) {
	t.Helper()
	c, resp, err := ts.dialWS(t, query, header)
	if err == nil {
		c.Close()
		t.Fatalf("ws: connected, want %d %s", status, reason)
	}
	checkRefusal(t, "ws", resp, status, reason)
	req, _ := http.NewRequest("GET", "http://"+ts.addr+"/sse/notifications/?"+query, nil)
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range header {
		req.Header[k] = v
	}
	sresp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	checkRefusal(t, "sse", sresp, status, reason)
}

// TestRefusalBodies: every admission refusal answers its status with the
// documented reason in a JSON body, on both transports.
func TestRefusalBodies(t *testing.T) {
	t.Run("too_many_connections", func(t *testing.T) {
		ts := startServer(t, func(c *config.Config) { c.Limits.PerUser = 1 })
		tok := token(t, "u", time.Hour)
		readWS(t, ts.mustWS(t, q("token", tok)))
		refusedBoth(t, ts, q("token", tok), nil, 429, "too_many_connections")
	})
	t.Run("too_many_connections_ip", func(t *testing.T) {
		ts := startServer(t, func(c *config.Config) { c.Limits.PerIP = 1 })
		readWS(t, ts.mustWS(t, q("token", token(t, "a", time.Hour))))
		refusedBoth(t, ts, q("token", token(t, "b", time.Hour)), nil, 429, "too_many_connections_ip")
	})
	t.Run("node_full", func(t *testing.T) {
		ts := startServer(t, func(c *config.Config) { c.Limits.MaxConnections = 1 })
		readWS(t, ts.mustWS(t, q("token", token(t, "a", time.Hour))))
		refusedBoth(t, ts, q("token", token(t, "b", time.Hour)), nil, 503, "node_full")
	})
	t.Run("header_too_large", func(t *testing.T) {
		const buf = 2048
		ts := startServer(t, func(c *config.Config) { c.Server.ReadBufferSize = buf })
		for _, path := range []string{"/ws/notifications/", "/sse/notifications/"} {
			// Exactly server.read_buffer_size bytes of an unfinished head: the
			// node has read all of it when it refuses, so its close is clean
			// (unread bytes would make the kernel reset the connection and
			// the client could lose the answer).
			head := "GET " + path + "?" + q("token", token(t, "a", time.Hour)) + " HTTP/1.1\r\nHost: x\r\n" +
				"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Big: "
			head += strings.Repeat("b", buf-len(head))
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write([]byte(head)); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("%s: %d-byte head: %v", path, len(head), err)
			}
			checkRefusal(t, path, resp, 431, "header_too_large")
			c.Close()
		}
		// A head that fits is served.
		readWS(t, ts.mustWS(t, q("token", token(t, "a", time.Hour))))
	})
}

// TestRefusalShuttingDown: a connect that arrives while the node drains is
// refused 503 shutting_down. The request's head is sent in two parts on one
// TCP connection, the second after Shutdown began (the listener is closed
// by then, so a new connection could not reach the node at all).
func TestRefusalShuttingDown(t *testing.T) {
	for _, path := range []string{"/sse/notifications/", "/ws/notifications/"} {
		t.Run(strings.Trim(path, "/"), func(t *testing.T) {
			ts := startServer(t, func(c *config.Config) { c.Server.HandshakeTimeout = 20 * time.Second })
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			head := "GET " + path + "?" + q("token", token(t, "d", time.Hour)) + " HTTP/1.1\r\nHost: x\r\n" +
				"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			if _, err := c.Write([]byte(head)); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				done <- ts.srv.Shutdown(ctx)
			}()
			for start := time.Now(); !ts.srv.life.draining.Load(); time.Sleep(5 * time.Millisecond) {
				if time.Since(start) > 10*time.Second {
					t.Fatal("node never started draining")
				}
			}
			if _, err := c.Write([]byte("\r\n")); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			checkRefusal(t, path, resp, 503, "shutting_down")
			c.Close()
			if err := <-done; err != nil {
				t.Fatalf("shutdown: %v", err)
			}
		})
	}
}

// TestRefusalRedisUnavailable: with Redis down a connect is refused 503
// broker_unavailable; with Redis up but its history unreadable (an ACL
// denies XRANGE, which only resuming reads use) a resume is refused 503
// history_unavailable while a fresh connect still works.
func TestRefusalRedisUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	ts := redisNodes(t, 1, []string{srv.Addr()}, "refuse:", func(c *config.Config) {
		c.Fanout.Redis.CommandTimeout = 2 * time.Second
	})[0]
	tok := token(t, "h", time.Hour)
	ws := ts.mustWS(t, q("token", tok, "format", "envelope"))
	readWS(t, ws)
	ts.publishTo(t, "h", `{"n":1}`)
	env := readWSJSON(t, ws)
	cursor, _ := env["cursor"].(string)
	if cursor == "" {
		t.Fatalf("no cursor in %v", env)
	}
	if _, err := redistest.Do(srv.Addr(), "ACL", "SETUSER", "default", "-xrange"); err != nil {
		t.Fatal(err)
	}
	refusedBoth(t, ts, q("token", tok, "since", cursor), nil, 503, "history_unavailable")
	readWS(t, ts.mustWS(t, q("token", token(t, "h2", time.Hour))))

	// Redis gone: a user whose channel is not subscribed yet cannot be
	// served.
	srv.Kill()
	refusedBoth(t, ts, q("token", token(t, "nobody", time.Hour)), nil, 503, "broker_unavailable")
}

// TestCloseMaxLifetime: over a real WebSocket a connection reaching
// limits.max_lifetime gets the disconnect event and close code 4001, within
// the lifetime's ±10% jitter (plus scheduling slack), not later.
func TestCloseMaxLifetime(t *testing.T) {
	const lifetime = 3 * time.Second
	ts := startServer(t, func(c *config.Config) { c.Limits.MaxLifetime = lifetime })
	start := time.Now()
	ws := ts.mustWS(t, q("token", token(t, "l", time.Hour)))
	readWS(t, ws)
	_ = ws.SetReadDeadline(time.Now().Add(4 * lifetime))
	var sawEvent bool
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			d := time.Since(start)
			if !websocketCloseCode(err, 4001) {
				t.Fatalf("after %s: want close 4001, got %v", d, err)
			}
			if low, high := lifetime*9/10, lifetime*11/10+1500*time.Millisecond; d < low || d > high {
				t.Fatalf("closed after %s, want %s..%s (max_lifetime %s ±10%%)", d, low, high, lifetime)
			}
			break
		}
		sawEvent = sawEvent || strings.Contains(string(b), `"reason":"max_lifetime","reconnect":true`)
	}
	if !sawEvent {
		t.Fatal("no max_lifetime disconnect event before the close")
	}
}

// TestCloseInternalOnHistoryFailure: a live connection that sees a gap in
// its channel (a message lost on Redis pub/sub) reads the gap from history;
// when that read fails (an ACL denies XRANGE) it is closed with 1011 and an
// internal_error event that tells the client to reconnect.
func TestCloseInternalOnHistoryFailure(t *testing.T) {
	srv := redistest.Start(t)
	const prefix = "gap1011:"
	ts := redisNodes(t, 1, []string{srv.Addr()}, prefix, func(c *config.Config) {
		c.Fanout.Redis.CommandTimeout = 2 * time.Second
	})[0]
	ws := ts.mustWS(t, q("token", token(t, "g", time.Hour)))
	readWS(t, ws)
	ts.publishTo(t, "g", `{"n":1}`)
	if got := string(readWS(t, ws)); got != `{"n":1}` {
		t.Fatalf("got %s", got)
	}
	if _, err := redistest.Do(srv.Addr(), "ACL", "SETUSER", "default", "-xrange"); err != nil {
		t.Fatal(err)
	}
	// Message 2 goes through Herald's own publish script but to a pub/sub
	// channel nobody listens on: in history, never delivered live.
	_, err := redistest.Do(srv.Addr(), "EVAL", fanout.RedisPublishScript(), "2",
		prefix+"meta:user:g", prefix+"hist:user:g",
		"lost-in-transit", `{"n":2}`, "", "0", "100", "600000", "600000", "0", "0")
	if err != nil {
		t.Fatalf("publish script: %v", err)
	}
	ts.publishTo(t, "g", `{"n":3}`)
	_ = ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	var events []string
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			if !websocketCloseCode(err, 1011) {
				t.Fatalf("want close 1011 after a failed gap read, got %v (events %q)", err, events)
			}
			break
		}
		events = append(events, string(b))
	}
	if len(events) == 0 || !strings.Contains(events[len(events)-1], `"reason":"internal_error","reconnect":true`) {
		t.Fatalf("want an internal_error disconnect event last, got %q", events)
	}
	for _, e := range events {
		if strings.Contains(e, `"n":3`) {
			t.Fatalf("message 3 delivered over the unfilled gap: %q", events)
		}
	}
}
