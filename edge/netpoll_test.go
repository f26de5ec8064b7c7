package edge

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/config"
)

// TestNetpollParksIdleConnections: with server.netpoll, idle WebSocket and
// SSE connections are parked on the poller and add no goroutine; a parked
// WebSocket still answers pings and gets messages; clients that go away
// release their hub entries, admission slots and poller registrations.
func TestNetpollParksIdleConnections(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Server.Netpoll = true })
	poller := ts.srv.live.env.Load().Poller
	if poller == nil {
		t.Fatal("server.netpoll set but no poller")
	}
	warm := ts.mustWS(t, q("token", token(t, "warm", time.Hour)))
	readWS(t, warm)
	time.Sleep(100 * time.Millisecond)
	baseG := ownGoroutines()

	const n = 100 // of each transport
	var wss []*websocket.Conn
	var sses []net.Conn
	for i := range n {
		c := ts.mustWS(t, q("token", token(t, fmt.Sprint("w", i), time.Hour)))
		readWS(t, c) // connection_established
		wss = append(wss, c)
		// A raw SSE client: an HTTP client would keep a reading goroutine.
		sc, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sc.Close() })
		fmt.Fprintf(sc, "GET /sse/notifications/?%s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n", q("token", token(t, fmt.Sprint("s", i), time.Hour)))
		_ = sc.SetReadDeadline(time.Now().Add(10 * time.Second))
		head, err := bufio.NewReader(sc).ReadString('}') // head and connection_established
		if err != nil || !strings.HasPrefix(head, "HTTP/1.1 200") {
			t.Fatalf("sse %d: %q %v", i, head, err)
		}
		sses = append(sses, sc)
	}
	// The session is attached (and its first event written) just before
	// it is parked: the last ones may still be on their way.
	deadline := time.Now().Add(10 * time.Second)
	for l := poller.Len(); l != 2*n+1; l = poller.Len() {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections parked, want %d", l, 2*n+1)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if g := ownGoroutines(); g > baseG+10 {
		t.Fatalf("%d goroutines with %d parked connections (%d before)", g, 2*n, baseG)
	}

	// Ping a parked WebSocket: the pong arrives; then a message does.
	pong := make(chan string, 1)
	wss[0].SetPongHandler(func(p string) error { pong <- p; return nil })
	if err := wss[0].WriteControl(websocket.PingMessage, []byte("p1"), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	ts.publishTo(t, "w0", `{"type":"after_ping"}`)
	if got := string(readWS(t, wss[0])); !strings.Contains(got, "after_ping") {
		t.Fatalf("got %q", got)
	}
	select {
	case p := <-pong:
		if p != "p1" {
			t.Fatalf("pong %q", p)
		}
	case <-time.After(5 * time.Second):
		// The pong may follow the message: one more read picks it up.
		ts.publishTo(t, "w0", `{"type":"second"}`)
		readWS(t, wss[0])
		select {
		case <-pong:
		case <-time.After(5 * time.Second):
			t.Fatal("no pong from a parked WebSocket")
		}
	}

	for i := range n {
		wss[i].Close()
		sses[i].Close()
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		hubLen, total, parked := ts.srv.hub.Len(), ts.srv.adm.total.Load(), poller.Len()
		if hubLen == 1 && total == 1 && parked == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the clients left: hub %d, slots %d, parked %d (want 1 each: the warm-up)", hubLen, total, parked)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
