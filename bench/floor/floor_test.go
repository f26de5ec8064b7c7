package floor_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/bench/floor"
	"github.com/heraldrt/herald/bench/floor/floortest"
)

// dialWS opens a WebSocket to the floor at addr as user u1 and reads its
// connection_established event, with 30 s for each read; the socket is
// closed when the test ends.
func dialWS(t *testing.T, addr string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws/notifications/?token=u1", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, _, err := ws.ReadMessage(); err != nil { // connection_established
		t.Fatal(err)
	}
	return ws
}

// TestCoalesceFrames checks the coalescing floor's hand-built frames: a
// WebSocket and an SSE client receive every published message intact and
// in order, including payloads that need the 16- and 64-bit WebSocket
// length forms, however many of them left in one write.
func TestCoalesceFrames(t *testing.T) {
	s, addr := floortest.Start(t, floor.Options{Coalesce: 4})

	ws := dialWS(t, addr)
	sse, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer sse.Close()
	fmt.Fprintf(sse, "GET /sse/notifications/?token=u2 HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	br := bufio.NewReader(sse)
	_ = sse.SetReadDeadline(time.Now().Add(30 * time.Second))
	sseData := func() string {
		t.Helper()
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				return strings.TrimSuffix(d, "\n")
			}
		}
	}
	sseData() // connection_established
	for s.Len() < 2 {
		time.Sleep(time.Millisecond)
	}

	var want []string
	for i := range 40 {
		pad := strings.Repeat("x", []int{3, 200, 70000}[i%3])
		want = append(want, fmt.Sprintf(`"%d-%s"`, i, pad))
	}
	for _, w := range want {
		resp, err := http.Post("http://"+addr+"/api/publish", "application/json",
			strings.NewReader(`{"channel":"broadcast","data":`+w+`}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("publish: HTTP %d", resp.StatusCode)
		}
	}
	for i, w := range want {
		_, got, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("ws message %d: %v", i, err)
		}
		if !bytes.Equal(got, []byte(w)) {
			t.Fatalf("ws message %d: %.40q, want %.40q", i, got, w)
		}
		if got := sseData(); got != w {
			t.Fatalf("sse message %d: %.40q, want %.40q", i, got, w)
		}
	}
}

// TestNetpollParksIdleConnections checks the floor's netpoll mode: idle
// WebSocket and SSE connections hold no goroutine, a parked WebSocket
// still answers pings and receives broadcasts, and a client that closes
// (close frame or plain hang-up) is removed.
func TestNetpollParksIdleConnections(t *testing.T) {
	s, addr := floortest.Start(t, floor.Options{Netpoll: true})
	waitLen := func(n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for s.Len() != n {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections, want %d", s.Len(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	ws := dialWS(t, addr)
	waitLen(1)
	base := runtime.NumGoroutine()

	const idle = 200
	var socks []net.Conn
	for i := range idle {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, c)
		// One at a time, so fasthttp's worker pool needs no more
		// workers than it had.
		fmt.Fprintf(c, "GET /sse/notifications/?token=s%d HTTP/1.1\r\nHost: %s\r\n\r\n", i, addr)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := bufio.NewReader(c).ReadString('}'); err != nil { // head and connection_established
			t.Fatal(err)
		}
	}
	waitLen(1 + idle)
	time.Sleep(100 * time.Millisecond) // the last hijack goroutine returns
	if g := runtime.NumGoroutine(); g > base+idle/20 {
		t.Fatalf("%d goroutines with %d parked SSE connections (%d before)", g, idle, base)
	}

	// A ping, split across two writes so the frame arrives in two parts,
	// is answered with a pong carrying its payload (seen by a reading
	// client), and the parked connection still receives broadcasts.
	pong := make(chan string, 1)
	ws.SetPongHandler(func(p string) error { pong <- p; return nil })
	msgs := make(chan string, 4)
	go func() {
		defer close(msgs)
		for {
			_, m, err := ws.ReadMessage()
			if err != nil {
				return
			}
			msgs <- string(m)
		}
	}()
	raw := ws.NetConn()
	frame := []byte{0x89, 0x80 | 4, 1, 2, 3, 4}
	frame = append(frame, 'p'^1, 'i'^2, 'n'^3, 'g'^4)
	if _, err := raw.Write(frame[:4]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := raw.Write(frame[4:]); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-pong:
		if p != "ping" {
			t.Fatalf("pong payload %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no pong")
	}
	resp, err := http.Post("http://"+addr+"/api/publish", "application/json", strings.NewReader(`{"channel":"broadcast","data":"hello"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := <-msgs; got != `"hello"` {
		t.Fatalf("broadcast: %q", got)
	}

	for _, c := range socks {
		c.Close()
	}
	waitLen(1)
	if err := ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	waitLen(0)
}
