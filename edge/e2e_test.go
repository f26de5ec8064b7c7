package edge

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/config"
)

// guideFlow is the Oracle FBDI upload of the Django Channels guide:
// started, five progress steps, completed. Payloads keep odd spacing to
// check they are delivered byte for byte.
func guideFlow(tx int) []string {
	steps := []string{"Preparing Data", "Upload to UCM", "Interface Loader", "Journal Import", "AutoPost"}
	out := []string{fmt.Sprintf(`{"type": "oracle_upload_started", "transaction_id": %d, "message": "Oracle upload started for transaction %d", "timestamp": "2025-11-18T12:30:45.123456"}`, tx, tx)}
	for i, s := range steps {
		out = append(out, fmt.Sprintf(`{"type": "oracle_upload_progress", "transaction_id": %d, "step": %q, "step_number": %d, "total_steps": 5, "message": "Running %s", "status": "processing", "timestamp": "2025-11-18T12:31:15.123456"}`, tx, s, i+1, s))
	}
	out = append(out, fmt.Sprintf(`{"type": "oracle_upload_completed", "transaction_id": %d, "message": "Oracle upload completed successfully", "success": true, "result_path": "/path/to/result", "timestamp": "2025-11-18T12:35:20.123456"}`, tx))
	return out
}

func failedFlow(tx int) []string {
	return []string{
		fmt.Sprintf(`{"type":"oracle_upload_started","transaction_id":%d,"message":"Oracle upload started for transaction %d","timestamp":"2025-11-18T12:30:45.123456"}`, tx, tx),
		fmt.Sprintf(`{"type":"oracle_upload_progress","transaction_id":%d,"step":"Preparing Data","step_number":1,"total_steps":5,"message":"Preparing","status":"processing","timestamp":"2025-11-18T12:31:15.123456"}`, tx),
		fmt.Sprintf(`{"type":"oracle_upload_failed","transaction_id":%d,"message":"Oracle upload failed","error":"Interface loader timeout","timestamp":"2025-11-18T12:33:45.123456"}`, tx),
	}
}

func TestGuideFlowWebSocket(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.mustWS(t, q("token", token(t, "42", time.Hour)))

	hello := readWSJSON(t, c)
	// user_id is a JSON number, as the guide's consumer sends self.user.id.
	want := map[string]any{"type": "connection_established", "message": "WebSocket connected successfully", "user_id": float64(42)}
	for k, v := range want {
		if hello[k] != v {
			t.Fatalf("connection_established %v, want %s=%v", hello, k, v)
		}
	}
	// The guide's ping/pong with its timestamp echoed as sent.
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type": "ping", "timestamp": "2025-11-18T12:30:00.000000"}`)); err != nil {
		t.Fatal(err)
	}
	if got := string(readWS(t, c)); got != `{"type":"pong","timestamp":"2025-11-18T12:30:00.000000"}` {
		t.Fatalf("pong = %s", got)
	}
	for _, flow := range [][]string{guideFlow(602), failedFlow(603)} {
		for _, p := range flow {
			ts.publishTo(t, "42", p)
		}
		for _, p := range flow {
			if got := string(readWS(t, c)); got != p {
				t.Fatalf("got  %s\nwant %s", got, p)
			}
		}
	}
}

func TestGuideFlowSSE(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.mustSSE(t, q("token", token(t, "42", time.Hour)), "")
	if c.resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" || c.resp.Header.Get("X-Accel-Buffering") != "no" {
		t.Fatalf("headers %v", c.resp.Header)
	}
	ev, hello := c.nextJSON(t)
	if hello["type"] != "connection_established" || hello["user_id"] != float64(42) || ev.ID == "" || ev.Event != "" {
		t.Fatalf("first event %+v %v", ev, hello)
	}
	for _, flow := range [][]string{guideFlow(602), failedFlow(603)} {
		for _, p := range flow {
			ts.publishTo(t, "42", p)
		}
		for _, p := range flow {
			ev := c.next(t)
			if ev.Data != p || ev.ID == "" || ev.Event != "" {
				t.Fatalf("got %+v\nwant data %s", ev, p)
			}
		}
	}
}

func TestSSENamedEvents(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.mustSSE(t, q("token", token(t, "7", time.Hour), "events", "named"), "")
	if ev := c.next(t); ev.Event != "connection_established" {
		t.Fatalf("event name %q", ev.Event)
	}
	ts.publishTo(t, "7", `{"type":"oracle_upload_progress","step_number":1}`)
	if ev := c.next(t); ev.Event != "oracle_upload_progress" {
		t.Fatalf("event name %q", ev.Event)
	}
	// A payload spanning lines arrives whole.
	ts.publishTo(t, "7", "{\n  \"type\": \"multi\"\n}")
	if ev := c.next(t); ev.Data != "{\n  \"type\": \"multi\"\n}" || ev.Event != "multi" {
		t.Fatalf("multi-line event %+v", ev)
	}
}

// TestIsolation publishes to many users concurrently over both transports
// and checks that nobody receives anybody else's events.
func TestIsolation(t *testing.T) {
	ts := startServer(t, nil)
	const users, perUser = 16, 20
	type rx struct {
		user string
		got  []string
	}
	results := make([]rx, users)
	var wg sync.WaitGroup
	ready := make(chan struct{}, users)
	for i := range users {
		user := fmt.Sprint("u", i)
		results[i].user = user
		if i%2 == 0 {
			c := ts.mustWS(t, q("token", token(t, user, time.Hour)))
			readWS(t, c)
			wg.Add(1)
			go func() {
				defer wg.Done()
				ready <- struct{}{}
				for range perUser {
					_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
					_, b, err := c.ReadMessage()
					if err != nil {
						return
					}
					results[i].got = append(results[i].got, string(b))
				}
			}()
		} else {
			c := ts.mustSSE(t, q("token", token(t, user, time.Hour)), "")
			c.next(t)
			wg.Add(1)
			go func() {
				defer wg.Done()
				ready <- struct{}{}
				for range perUser {
					select {
					case ev, ok := <-c.events:
						if !ok {
							return
						}
						if ev.Data != "" {
							results[i].got = append(results[i].got, ev.Data)
						}
					case <-time.After(10 * time.Second):
						return
					}
				}
			}()
		}
	}
	for range users {
		<-ready
	}
	var pw sync.WaitGroup
	for i := range users {
		pw.Add(1)
		go func() {
			defer pw.Done()
			for n := range perUser {
				ts.publishTo(t, fmt.Sprint("u", i), fmt.Sprintf(`{"for":"u%d","n":%d}`, i, n))
				if rand.IntN(4) == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	pw.Wait()
	wg.Wait()
	for _, r := range results {
		if len(r.got) != perUser {
			t.Errorf("%s received %d messages, want %d", r.user, len(r.got), perUser)
		}
		for n, m := range r.got {
			want := fmt.Sprintf(`{"for":"%s","n":%d}`, r.user, n)
			if m != want {
				t.Errorf("%s message %d = %s, want %s", r.user, n, m, want)
			}
		}
	}
}

func TestBroadcastAndGrantedChannels(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.mustWS(t, q("token", token(t, "a", time.Hour, "team:1")))
	b := ts.mustSSE(t, q("token", token(t, "b", time.Hour)), "")
	readWS(t, a)
	b.next(t)
	ts.publish(t, `{"channel":"team:1","data":{"team":1}}`)
	ts.publish(t, `{"channel":"broadcast","data":{"all":true}}`)
	if got := string(readWS(t, a)); got != `{"team":1}` {
		t.Fatalf("a got %s", got)
	}
	if got := string(readWS(t, a)); got != `{"all":true}` {
		t.Fatalf("a got %s", got)
	}
	if ev := b.next(t); ev.Data != `{"all":true}` {
		t.Fatalf("b got %s (team:1 must not reach b)", ev.Data)
	}
}

// TestUserIDStringSwitch: stream.user_id_string keeps the integer id a
// JSON string on both transports; a non-integer id is a string either way.
func TestUserIDStringSwitch(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Stream.UserIDString = true })
	c := ts.mustWS(t, q("token", token(t, "42", time.Hour)))
	if hello := readWSJSON(t, c); hello["user_id"] != "42" {
		t.Fatalf("WebSocket connection_established %v, want user_id \"42\"", hello)
	}
	s := ts.mustSSE(t, q("token", token(t, "42", time.Hour)), "")
	if _, hello := s.nextJSON(t); hello["user_id"] != "42" {
		t.Fatalf("SSE connection_established %v, want user_id \"42\"", hello)
	}
	ts2 := startServer(t, nil)
	c2 := ts2.mustWS(t, q("token", token(t, "alice", time.Hour)))
	if hello := readWSJSON(t, c2); hello["user_id"] != "alice" {
		t.Fatalf("connection_established %v, want user_id \"alice\"", hello)
	}
}
