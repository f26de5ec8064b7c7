package floor

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// TestCoalesceFrames checks the coalescing floor's hand-built frames: a
// WebSocket and an SSE client receive every published message intact and
// in order, including payloads that need the 16- and 64-bit WebSocket
// length forms, however many of them left in one write.
func TestCoalesceFrames(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewWith(slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Coalesce: 4})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	defer func() {
		if err := s.Shutdown(); err != nil {
			t.Error(err)
		}
		<-done
	}()
	addr := ln.Addr().String()

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws/notifications/?token=u1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	sse, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer sse.Close()
	fmt.Fprintf(sse, "GET /sse/notifications/?token=u2 HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	br := bufio.NewReader(sse)
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	_ = sse.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, _, err := ws.ReadMessage(); err != nil { // connection_established
		t.Fatal(err)
	}
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
