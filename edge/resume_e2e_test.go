package edge

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
)

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
