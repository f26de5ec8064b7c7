package edge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/config"
)

func TestPerUserLimitRejectNew(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Limits.PerUser = 3 })
	tok := token(t, "42", time.Hour)
	for i := range 3 {
		if i%2 == 0 {
			readWS(t, ts.mustWS(t, q("token", tok)))
		} else {
			ts.mustSSE(t, q("token", tok), "").next(t)
		}
	}
	_, resp, err := ts.dialWS(t, q("token", tok), nil)
	if err == nil || resp == nil || resp.StatusCode != 429 {
		t.Fatalf("4th ws: %v %v", err, resp)
	}
	_, sresp, _ := ts.openSSE(t, q("token", tok), "")
	if sresp == nil || sresp.StatusCode != 429 {
		t.Fatalf("4th sse: %v", sresp)
	}
	// Another user is unaffected.
	readWS(t, ts.mustWS(t, q("token", token(t, "43", time.Hour))))
}

func TestPerUserLimitEvictOldest(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Limits.PerUser = 2; c.Limits.PerUserPolicy = "evict_oldest" })
	tok := token(t, "42", time.Hour)
	oldest := ts.mustWS(t, q("token", tok))
	readWS(t, oldest)
	second := ts.mustSSE(t, q("token", tok), "")
	second.next(t)
	third := ts.mustWS(t, q("token", tok))
	readWS(t, third)

	_ = oldest.SetReadDeadline(time.Now().Add(5 * time.Second))
	var sawEvent bool
	for {
		_, b, err := oldest.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, 4409) {
				t.Fatalf("oldest: want close 4409, got %v", err)
			}
			break
		}
		sawEvent = sawEvent || strings.Contains(string(b), `"reason":"replaced","reconnect":false`)
	}
	if !sawEvent {
		t.Fatal("oldest got no replaced event")
	}
	// The two newer ones still receive.
	ts.publishTo(t, "42", `{"n":1}`)
	if string(readWS(t, third)) != `{"n":1}` || second.next(t).Data != `{"n":1}` {
		t.Fatal("newer connections do not receive")
	}
}

func TestPerIPLimitsAndTrustedProxy(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Limits.PerIP = 2
		c.Limits.TrustedProxies = []string{"127.0.0.1"}
	})
	xff := func(ip string) map[string][]string { return map[string][]string{"X-Forwarded-For": {"6.6.6.6, " + ip}} }
	for range 2 {
		c, _, err := ts.dialWS(t, q("token", token(t, "a", time.Hour)), xff("10.1.1.1"))
		if err != nil {
			t.Fatal(err)
		}
		readWS(t, c)
	}
	_, resp, err := ts.dialWS(t, q("token", token(t, "b", time.Hour)), xff("10.1.1.1"))
	if err == nil || resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("3rd from one IP: %v %v", err, resp)
	}
	// A different forwarded client is a different IP: the forged left-most
	// 6.6.6.6 is ignored.
	c, _, err := ts.dialWS(t, q("token", token(t, "b", time.Hour)), xff("10.1.1.2"))
	if err != nil {
		t.Fatalf("other client behind the proxy: %v", err)
	}
	readWS(t, c)
}

func TestPerIPRateLimit(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Limits.PerIPRate = 1; c.Limits.PerIPBurst = 3 })
	var refused int
	var retry string
	for range 6 {
		c, resp, err := ts.dialWS(t, q("token", token(t, "r", time.Hour)), nil)
		if err == nil {
			c.Close()
			continue
		}
		if resp == nil || resp.StatusCode != 429 {
			t.Fatalf("want 429, got %v %v", err, resp)
		}
		refused++
		retry = resp.Header.Get("Retry-After")
	}
	if refused < 2 || retry == "" {
		t.Fatalf("refused %d of 6 at burst 3 (Retry-After %q)", refused, retry)
	}
}

func TestMaxConnections(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Limits.MaxConnections = 1 })
	readWS(t, ts.mustWS(t, q("token", token(t, "a", time.Hour))))
	_, resp, err := ts.dialWS(t, q("token", token(t, "b", time.Hour)), nil)
	if err == nil || resp.StatusCode != 503 {
		t.Fatalf("over max_connections: %v %v", err, resp)
	}
}

// TestAdmissionCountersReturnToZero: slots are released on every path.
func TestAdmissionCountersReturnToZero(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Limits.PerIP = 100 })
	for i := range 20 {
		switch i % 3 {
		case 0:
			c := ts.mustWS(t, q("token", token(t, fmt.Sprint(i), time.Hour)))
			readWS(t, c)
			c.Close()
		case 1:
			c := ts.mustSSE(t, q("token", token(t, fmt.Sprint(i), time.Hour)), "")
			c.next(t)
			c.resp.Body.Close()
		case 2:
			ts.dialWS(t, q("token", "bad"), nil) // refused after enter
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for ts.srv.adm.total.Load() != 0 || ts.srv.hub.Len() != 0 || len(ts.srv.adm.users) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("total %d, hub %d, users %d", ts.srv.adm.total.Load(), ts.srv.hub.Len(), len(ts.srv.adm.users))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIdleTimeout(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Limits.IdleTimeout = 600 * time.Millisecond
		c.Stream.SSEHeartbeat = 200 * time.Millisecond
	})
	s := ts.mustSSE(t, q("token", token(t, "i", time.Hour)), "")
	s.next(t)
	evs := s.ended(t)
	if len(evs) == 0 || !strings.Contains(evs[len(evs)-1].Data, `"reason":"idle_timeout"`) {
		t.Fatalf("idle end: %+v", evs)
	}
}

// TestMaxLifetimeResumesWithoutLoss: a connection ended for max_lifetime
// carries its cursor in the final event; resuming from it loses nothing.
func TestMaxLifetimeResumesWithoutLoss(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Limits.MaxLifetime = time.Second })
	tok := token(t, "l", time.Hour)
	s := ts.mustSSE(t, q("token", tok), "")
	s.next(t)
	ts.publishTo(t, "l", `{"n":1}`)
	evs := s.ended(t)
	last := evs[len(evs)-1]
	if !strings.Contains(last.Data, `"reason":"max_lifetime","reconnect":true`) || last.ID == "" {
		t.Fatalf("lifetime end: %+v", evs)
	}
	ts.publishTo(t, "l", `{"n":2}`)
	s2 := ts.mustSSE(t, q("token", tok), last.ID)
	s2.next(t)
	if ev := s2.next(t); ev.Data != `{"n":2}` {
		t.Fatalf("after lifetime reconnect got %s", ev.Data)
	}
}

func TestSSETokenExpiring(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Limits.TokenExpiringLead = 2 * time.Second })
	s := ts.mustSSE(t, q("token", token(t, "x", 3*time.Second)), "")
	s.next(t)
	_, ev := s.nextJSON(t)
	if ev["type"] != "token_expiring" || ev["expires_at"] == nil {
		t.Fatalf("want token_expiring, got %v", ev)
	}
}

// TestSlowlorisHandshake: a client that opens TCP and trickles a request
// head, each piece well within the handshake timeout, is cut about one
// handshake timeout after it connected: the deadline covers the whole head,
// it is not reset by every read (which would keep the trickle alive for as
// long as it lasts).
func TestSlowlorisHandshake(t *testing.T) {
	const timeout = 500 * time.Millisecond
	ts := startServer(t, func(c *config.Config) { c.Server.HandshakeTimeout = timeout })
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, _ = c.Write([]byte("GET /sse/notifications/ HTTP/1.1\r\nHost: x\r\n"))
	// One header line every timeout/5 for 20 timeouts: a per-read timeout
	// never fires during the trickle.
	const trickle = 20 * timeout
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(timeout / 5)
		defer tick.Stop()
		for time.Since(start) < trickle {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := c.Write([]byte("X-A: b\r\n")); err != nil {
				return
			}
		}
	}()
	// The server answers 408 request_timeout (it used to answer 400
	// "malformed HTTP request", which sent operators after a client bug),
	// and the connection must be over well before the trickle ends.
	_ = c.SetReadDeadline(time.Now().Add(trickle + 5*time.Second))
	var got bytes.Buffer
	_, err = io.Copy(&got, c)
	d := time.Since(start)
	if !strings.HasPrefix(got.String(), "HTTP/1.1 408 ") || !strings.Contains(got.String(), `"error":"request_timeout"`) {
		t.Errorf("trickling client got %q; want a 408 request_timeout", got.String())
	}
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("trickling client kept for %s, past the whole trickle", d)
		}
		// A reset is also a close.
	}
	// Generous on a loaded machine, but far below the trickle's length.
	if d < timeout*9/10 || d > 8*timeout {
		t.Fatalf("trickling client cut after %s; want about the handshake timeout %s (trickle lasts %s)", d, timeout, trickle)
	}
	t.Logf("cut after %s (handshake timeout %s)", d, timeout)
}

// TestAdmissionSlots: a node admits at most admissionSlots connects per P
// at once; one more waits for a slot, parked, and is refused with 503
// node_busy (Retry-After) when none frees within server.handshake_timeout,
// while the publish API and established connections are unaffected. In a
// reconnect storm the bound keeps a publish from queueing behind
// thousands of connects (bench-storm SIGKILL: publish p99 1.7 s without
// it, 0.14 s with it).
func TestAdmissionSlots(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ts := startServer(t, func(c *config.Config) { c.Server.HandshakeTimeout = timeout })
	ws := ts.mustWS(t, q("token", token(t, "in", time.Hour)))
	readWS(t, ws)
	// Hold every slot, as connects in the middle of admission would.
	n := cap(ts.srv.adm.slots)
	if n != admissionSlots*runtime.GOMAXPROCS(0) {
		t.Fatalf("%d slots; want %d per P", n, admissionSlots)
	}
	for range n {
		if !ts.srv.adm.slot(time.Second) {
			t.Fatal("a free slot was not granted")
		}
	}
	start := time.Now()
	_, resp, err := ts.dialWS(t, q("token", token(t, "late", time.Hour)), nil)
	if err == nil {
		t.Fatal("connect admitted with every slot taken")
	}
	checkRefusal(t, "ws", resp, 503, "node_busy")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("node_busy without Retry-After")
	}
	if el := time.Since(start); el < timeout*9/10 {
		t.Fatalf("refused after %s; want a wait of about handshake_timeout %s", el, timeout)
	}
	// Publishing and the established connection do not wait for slots.
	ts.publishTo(t, "in", `{"type":"still"}`)
	if got := string(readWS(t, ws)); got != `{"type":"still"}` {
		t.Fatalf("established connection got %s", got)
	}
	// A slot that frees lets the waiting connect in.
	done := make(chan error, 1)
	go func() {
		c, _, err := ts.dialWS(t, q("token", token(t, "waited", time.Hour)), nil)
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	time.Sleep(timeout / 3)
	ts.srv.adm.unslot()
	if err := <-done; err != nil {
		t.Fatalf("connect waiting for a slot that freed: %v", err)
	}
	for range n - 1 {
		ts.srv.adm.unslot()
	}
}
