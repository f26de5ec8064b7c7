package edge

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/internal/redistest"
)

// TestResumeIntoNewEpoch: a client resumes with a cursor from an epoch that
// ended (a restarted node's memory broker, a Redis shard restarted without
// its data) while the new epoch already holds messages. It gets
// stream_reset epoch_changed for its channel, then the new epoch's messages
// from offset 1, each exactly once, then live ones — over SSE and over WS.
func TestResumeIntoNewEpoch(t *testing.T) {
	for _, broker := range []string{"memory", "redis"} {
		for _, transport := range []string{"sse", "ws"} {
			t.Run(broker+"/"+transport, func(t *testing.T) {
				user := "ep" + broker + transport
				tok := token(t, user, time.Hour)
				var mutate func(*config.Config)
				var rd *redistest.Server
				if broker == "redis" {
					rd = redistest.Start(t)
					mutate = func(c *config.Config) {
						c.Fanout.Broker = "redis"
						c.Fanout.Redis.Shards = []string{rd.Addr()}
						c.Fanout.Redis.ProbeInterval = 200 * time.Millisecond
					}
				}
				// A cursor of the old epoch.
				old := startServer(t, mutate)
				s := old.mustSSE(t, q("token", tok), "")
				s.next(t)
				old.publishTo(t, user, `{"n":"old"}`)
				cursor := s.next(t).ID
				s.resp.Body.Close()

				// The restart: a new node (memory), or the shard loses its data.
				node := old
				if broker == "memory" {
					old.shutdown(t)
					node = startServer(t, mutate)
				} else {
					rd.Restart()
					waitPublishable(t, node, "probe"+user)
				}
				flow := guideFlow(900)
				for _, p := range flow {
					node.publishTo(t, user, p)
				}

				var ws *websocket.Conn
				next := func() map[string]any { // one event, data as JSON
					t.Helper()
					var m map[string]any
					if transport == "sse" {
						_, m = s.nextJSON(t)
					} else {
						m = readWSJSON(t, ws)
					}
					return m
				}
				if transport == "sse" {
					s = node.mustSSE(t, q("token", tok), cursor)
				} else {
					ws = node.mustWS(t, q("token", tok, "format", "envelope", "since", cursor))
				}
				if m := next(); m["type"] != "connection_established" {
					t.Fatalf("first event %v", m)
				}
				resets := map[string]any{}
				var got []string
				node.publishTo(t, user, `{"n":"live"}`)
				for {
					m := next()
					if m["type"] == "stream_reset" {
						if len(got) > 0 {
							t.Fatalf("stream_reset after messages: %v", m)
						}
						resets[fmt.Sprint(m["channel"])] = m["reason"]
						continue
					}
					data := m
					if transport == "ws" {
						data, _ = m["data"].(map[string]any)
					}
					b, _ := json.Marshal(data)
					if string(b) == `{"n":"live"}` {
						break
					}
					got = append(got, string(b))
				}
				if resets["user:"+user] != "epoch_changed" {
					t.Fatalf("resets %v, want epoch_changed for user:%s", resets, user)
				}
				if len(got) != len(flow) {
					t.Fatalf("got %d messages of the new epoch before the live one, want %d:\n%v", len(got), len(flow), got)
				}
				for i, want := range flow {
					if !jsonEqual(t, got[i], want) {
						t.Fatalf("message %d: %s, want %s", i, got[i], want)
					}
				}
			})
		}
	}
}

// waitPublishable publishes {"probe":true} to user until the node accepts
// five in a row (the shard is back and every pooled connection with it).
func waitPublishable(t *testing.T, node *testServer, user string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for ok := 0; ; {
		code, _ := node.post(t, "/api/publish", testAPIKey, `{"user_id":"`+user+`","data":{"probe":true}}`)
		if code == 200 {
			if ok++; ok == 5 {
				return
			}
			continue
		}
		ok = 0
		if time.Now().After(deadline) {
			t.Fatalf("publishing did not recover after the shard restarted: %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return a == b
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}
