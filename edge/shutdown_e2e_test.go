package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/config"
)

func TestGracefulShutdown(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Server.ReconnectWindow = 500 * time.Millisecond })
	ws := ts.mustWS(t, q("token", token(t, "1", time.Hour)))
	readWS(t, ws)
	sse := ts.mustSSE(t, q("token", token(t, "2", time.Hour)), "")
	sse.next(t)

	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- ts.srv.Shutdown(t.Context()) }()

	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseServiceRestart) {
				t.Fatalf("ws: want close 1012, got %v", err)
			}
			break
		}
	}
	evs := sse.ended(t)
	var retry bool
	for _, ev := range evs {
		if ev.Retry != "" {
			retry = true
		}
	}
	if !retry || len(evs) == 0 || !strings.Contains(evs[len(evs)-1].Data, `"reason":"shutdown"`) {
		t.Fatalf("sse end: %+v", evs)
	}
	if err := <-errc; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %s", d)
	}
	// New connections are refused while draining (or the port is closed).
	if _, resp, err := ts.dialWS(t, q("token", token(t, "1", time.Hour)), nil); err == nil || (resp != nil && resp.StatusCode != 503) {
		t.Fatalf("connect after shutdown: %v %v", err, resp)
	}
}

// TestShutdownSpreadsReconnects: Shutdown spreads its clients' reconnects
// over server.reconnect_window instead of sending them all back at once:
// the connections are closed at times spread across the window, and each
// gets a different retry hint within it.
func TestShutdownSpreadsReconnects(t *testing.T) {
	const window = 2 * time.Second
	const n = 20
	ts := startServer(t, func(c *config.Config) {
		c.Server.ReconnectWindow = window
		c.Server.ShutdownTimeout = 30 * time.Second
	})
	type end struct {
		at    time.Duration // since Shutdown began
		retry time.Duration // the event's retry_ms
		err   error
	}
	ends := make(chan end, n)
	var start time.Time
	started := make(chan struct{})
	retryOf := func(data string) time.Duration {
		var ev struct {
			Type, Reason string
			RetryMS      int64 `json:"retry_ms"`
		}
		if json.Unmarshal([]byte(data), &ev) != nil || ev.Type != "disconnect" || ev.Reason != "shutdown" {
			return -1
		}
		return time.Duration(ev.RetryMS) * time.Millisecond
	}
	for i := range n {
		user := fmt.Sprint("s", i)
		if i%2 == 0 {
			ws := ts.mustWS(t, q("token", token(t, user, time.Hour)))
			readWS(t, ws)
			go func() {
				retry := time.Duration(-1)
				_ = ws.SetReadDeadline(time.Now().Add(window + 20*time.Second))
				for {
					_, b, err := ws.ReadMessage()
					if err != nil {
						<-started
						if !websocket.IsCloseError(err, websocket.CloseServiceRestart) {
							ends <- end{err: fmt.Errorf("ws %s: want close 1012, got %w", user, err)}
							return
						}
						ends <- end{at: time.Since(start), retry: retry}
						return
					}
					if r := retryOf(string(b)); r >= 0 {
						retry = r
					}
				}
			}()
		} else {
			sse := ts.mustSSE(t, q("token", token(t, user, time.Hour)), "")
			sse.next(t)
			go func() {
				retry := time.Duration(-1)
				for ev := range sse.events {
					if r := retryOf(ev.Data); r >= 0 {
						retry = r
					}
				}
				<-started
				ends <- end{at: time.Since(start), retry: retry}
			}()
		}
	}
	start = time.Now()
	close(started)
	errc := make(chan error, 1)
	go func() { errc <- ts.srv.Shutdown(context.Background()) }()
	var closes, retries []time.Duration
	for range n {
		select {
		case e := <-ends:
			if e.err != nil {
				t.Fatal(e.err)
			}
			if e.retry < 0 {
				t.Fatalf("a client got no shutdown event with retry_ms")
			}
			closes, retries = append(closes, e.at), append(retries, e.retry)
		case <-time.After(window + 30*time.Second):
			t.Fatal("clients not closed")
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	slices.Sort(closes)
	slices.Sort(retries)
	t.Logf("closes %v", closes)
	t.Logf("retry hints %v", retries)
	// Closes: spread over most of the window (at i*window/n), the last
	// within the window plus slack for a loaded machine.
	if span := closes[n-1] - closes[0]; span < window/2 {
		t.Fatalf("connections closed within %s of each other, want spread over the %s window", span, window)
	}
	if closes[n-1] > window+5*time.Second {
		t.Fatalf("last connection closed %s after shutdown began (window %s)", closes[n-1], window)
	}
	// Retry hints: each within the window (plus its 100 ms floor), and
	// spread (uniform random: 20 of them span less than half the window
	// with probability ~4e-5).
	if retries[0] < 100*time.Millisecond || retries[n-1] > window+100*time.Millisecond {
		t.Fatalf("retry hints %s..%s, want within 100ms..%s", retries[0], retries[n-1], window+100*time.Millisecond)
	}
	if span := retries[n-1] - retries[0]; span < window/2 {
		t.Fatalf("retry hints span only %s, want spread over the %s window", span, window)
	}
}
