package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
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

func TestResumeSSEWithLastEventID(t *testing.T) {
	ts := startServer(t, nil)
	tok := token(t, "42", time.Hour)
	c := ts.mustSSE(t, q("token", tok), "")
	c.next(t)
	flow := guideFlow(1)
	for _, p := range flow[:2] {
		ts.publishTo(t, "42", p)
	}
	var last string
	for range flow[:2] {
		last = c.next(t).ID
	}
	c.resp.Body.Close()
	for _, p := range flow[2:] {
		ts.publishTo(t, "42", p)
	}
	c2 := ts.mustSSE(t, q("token", tok), last)
	c2.next(t) // connection_established
	for _, p := range flow[2:] {
		if ev := c2.next(t); ev.Data != p {
			t.Fatalf("resumed %s, want %s", ev.Data, p)
		}
	}
	// Nothing more: the next thing is a new live message, not a duplicate.
	ts.publishTo(t, "42", `{"type":"after"}`)
	if ev := c2.next(t); ev.Data != `{"type":"after"}` {
		t.Fatalf("after resume got %s", ev.Data)
	}
}

func TestResumeWebSocketEnvelopeSince(t *testing.T) {
	ts := startServer(t, nil)
	tok := token(t, "42", time.Hour)
	c := ts.mustWS(t, q("token", tok, "format", "envelope"))
	hello := readWSJSON(t, c)
	cursor, _ := hello["cursor"].(string)
	if hello["type"] != "connection_established" || cursor == "" {
		t.Fatalf("envelope hello %v", hello)
	}
	ts.publishTo(t, "42", `{"n":1}`)
	env := readWSJSON(t, c)
	if env["channel"] != "user:42" || env["data"].(map[string]any)["n"] != 1.0 || env["cursor"] == "" {
		t.Fatalf("envelope %v", env)
	}
	cursor = env["cursor"].(string)
	c.Close()
	for i := 2; i <= 4; i++ {
		ts.publishTo(t, "42", fmt.Sprintf(`{"n":%d}`, i))
	}
	ts.publish(t, `{"channel":"broadcast","data":{"n":"b"}}`)
	c2 := ts.mustWS(t, q("token", tok, "format", "envelope", "since", cursor))
	readWSJSON(t, c2)
	var got []string
	for range 4 {
		env := readWSJSON(t, c2)
		got = append(got, fmt.Sprint(env["channel"], "=", env["data"].(map[string]any)["n"]))
	}
	want := "[user:42=2 user:42=3 user:42=4 broadcast=b]"
	if fmt.Sprint(got) != want {
		t.Fatalf("resumed %v, want %s", got, want)
	}
}

func TestResumeAcrossTransports(t *testing.T) {
	ts := startServer(t, nil)
	tok := token(t, "9", time.Hour)
	// SSE → WS: the SSE event id is a valid ?since= cursor.
	s := ts.mustSSE(t, q("token", tok), "")
	s.next(t)
	ts.publishTo(t, "9", `{"n":1}`)
	id := s.next(t).ID
	s.resp.Body.Close()
	ts.publishTo(t, "9", `{"n":2}`)
	w := ts.mustWS(t, q("token", tok, "format", "envelope", "since", id))
	readWSJSON(t, w)
	env := readWSJSON(t, w)
	if env["data"].(map[string]any)["n"] != 2.0 {
		t.Fatalf("ws after sse got %v", env)
	}
	// WS → SSE: the envelope cursor is a valid Last-Event-ID.
	cursor := env["cursor"].(string)
	w.Close()
	ts.publishTo(t, "9", `{"n":3}`)
	s2 := ts.mustSSE(t, q("token", tok), cursor)
	s2.next(t)
	if ev := s2.next(t); ev.Data != `{"n":3}` {
		t.Fatalf("sse after ws got %s", ev.Data)
	}
}

func TestStreamResetWhenHistoryGone(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.History.Size = 3 })
	tok := token(t, "5", time.Hour)
	s := ts.mustSSE(t, q("token", tok), "")
	s.next(t)
	ts.publishTo(t, "5", `{"n":1}`)
	id := s.next(t).ID
	s.resp.Body.Close()
	for i := 2; i <= 10; i++ {
		ts.publishTo(t, "5", fmt.Sprintf(`{"n":%d}`, i))
	}
	s2 := ts.mustSSE(t, q("token", tok), id)
	s2.next(t)
	_, reset := s2.nextJSON(t)
	if reset["type"] != "stream_reset" || reset["reason"] != "history_expired" || reset["channel"] != "user:5" {
		t.Fatalf("want stream_reset, got %v", reset)
	}
	ts.publishTo(t, "5", `{"n":11}`)
	if ev := s2.next(t); ev.Data != `{"n":11}` {
		t.Fatalf("after reset got %s", ev.Data)
	}
}

func TestBadCursorIs400(t *testing.T) {
	ts := startServer(t, nil)
	tok := token(t, "1", time.Hour)
	for _, bad := range []string{"!!!", "AAAA", strings.Repeat("A", 2000)} {
		_, resp, _ := ts.openSSE(t, q("token", tok), bad)
		if resp == nil || resp.StatusCode != 400 {
			t.Fatalf("cursor %.10q: status %v", bad, resp)
		}
		_, resp, err := ts.dialWS(t, q("token", tok, "since", bad), nil)
		if err == nil || resp == nil || resp.StatusCode != 400 {
			t.Fatalf("ws cursor %.10q: %v %v", bad, err, resp)
		}
	}
}

func TestAuthFailures(t *testing.T) {
	ts := startServer(t, nil)
	none := "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + "eyJzdWIiOiI0MiIsImV4cCI6OTk5OTk5OTk5OX0."
	other, _ := signWith("another-secret-0123456789abcdef0123", "42", time.Hour)
	cases := []struct {
		name, token, reason string
	}{
		{"anonymous", "", "missing_token"},
		{"alg none", none, "unsupported_algorithm"},
		{"wrong key", other, "invalid_signature"},
		{"expired", token(t, "42", -time.Minute), "token_expired"},
		{"garbage", "not.a.jwt", "malformed_token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			query := ""
			if tc.token != "" {
				query = q("token", tc.token)
			}
			_, resp, err := ts.dialWS(t, query, nil)
			if err == nil || resp == nil || resp.StatusCode != 401 {
				t.Fatalf("ws: err %v resp %v", err, resp)
			}
			var body map[string]string
			b, _ := io.ReadAll(resp.Body)
			if json.Unmarshal(b, &body) != nil || body["error"] != tc.reason {
				t.Fatalf("ws body %s, want error %s", b, tc.reason)
			}
			_, sresp, err := ts.openSSE(t, query, "")
			if err != nil || sresp.StatusCode != 401 {
				t.Fatalf("sse: %v %v", err, sresp)
			}
			b, _ = io.ReadAll(sresp.Body)
			if json.Unmarshal(b, &body) != nil || body["error"] != tc.reason {
				t.Fatalf("sse body %s, want %s", b, tc.reason)
			}
		})
	}
	// Bearer header and cookie work too.
	h := http.Header{"Authorization": {"Bearer " + token(t, "1", time.Hour)}}
	if _, _, err := ts.dialWS(t, "", h); err != nil {
		t.Fatalf("bearer: %v", err)
	}
	h = http.Header{"Cookie": {"herald_token=" + token(t, "1", time.Hour)}}
	if _, _, err := ts.dialWS(t, "", h); err != nil {
		t.Fatalf("cookie: %v", err)
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

func TestWebSocketBadInput(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Stream.WSReadLimit = 1024 })
	tok := token(t, "1", time.Hour)

	c := ts.mustWS(t, q("token", tok))
	readWS(t, c)
	for _, in := range []string{`not json`, `{"type":`, `[1,2]`, `{"type":"dance"}`, `{}`} {
		_ = c.WriteMessage(websocket.TextMessage, []byte(in))
		if m := readWSJSON(t, c); m["type"] != "error" {
			t.Fatalf("input %q: got %v, want an error event", in, m)
		}
	}
	_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","timestamp":1}`))
	if got := string(readWS(t, c)); got != `{"type":"pong","timestamp":1}` {
		t.Fatalf("still open after bad input? got %s", got)
	}

	expectClose := func(c *websocket.Conn, code int) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			_, _, err := c.ReadMessage()
			if err == nil {
				continue
			}
			if !websocket.IsCloseError(err, code) {
				t.Fatalf("want close %d, got %v", code, err)
			}
			return
		}
	}
	c = ts.mustWS(t, q("token", tok))
	readWS(t, c)
	_ = c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
	expectClose(c, websocket.CloseUnsupportedData)

	c = ts.mustWS(t, q("token", tok))
	readWS(t, c)
	_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","pad":"`+strings.Repeat("x", 4096)+`"}`))
	expectClose(c, websocket.CloseMessageTooBig)

	c = ts.mustWS(t, q("token", tok))
	readWS(t, c)
	_ = c.WriteMessage(websocket.TextMessage, []byte{'{', 0xff, 0xfe, '}'})
	expectClose(c, websocket.CloseInvalidFramePayloadData)
}

func TestWebSocketNeedsUpgrade(t *testing.T) {
	ts := startServer(t, nil)
	resp, err := http.Get("http://" + ts.addr + "/ws/notifications/?token=" + token(t, "1", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("plain GET on the ws endpoint: %d", resp.StatusCode)
	}
}

func TestTokenExpiryEndsConnection(t *testing.T) {
	ts := startServer(t, nil)
	ws := ts.mustWS(t, q("token", token(t, "1", 1500*time.Millisecond)))
	readWS(t, ws)
	sse := ts.mustSSE(t, q("token", token(t, "1", 1500*time.Millisecond)), "")
	sse.next(t)

	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var sawEvent bool
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !asCloseError(err, &ce) || ce.Code != 4401 || ce.Text != "token_expired" {
				t.Fatalf("ws: want close 4401 token_expired, got %v", err)
			}
			break
		}
		if strings.Contains(string(b), `"reason":"token_expired"`) {
			sawEvent = true
		}
	}
	if !sawEvent {
		t.Fatal("ws: no disconnect event before the close frame")
	}
	evs := sse.ended(t)
	if len(evs) == 0 || !strings.Contains(evs[len(evs)-1].Data, `"reason":"token_expired"`) {
		t.Fatalf("sse: last events %+v", evs)
	}
}

func asCloseError(err error, target **websocket.CloseError) bool {
	ce, ok := err.(*websocket.CloseError)
	if ok {
		*target = ce
	}
	return ok
}

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
