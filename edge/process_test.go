package edge

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/heraldtest"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/heraldrt/herald/internal/ssetest"
)

// processConfig is the YAML of a herald node process for tests, with the
// test secret and API key; extra is appended (top-level sections).
func processConfig(extra string) string {
	return fmt.Sprintf("auth:\n  jwt:\n    hmac_secret: %q\napi:\n  key: %q\n", testSecret, testAPIKey) + extra
}

// dialProcess opens a WebSocket to a node process; it returns the HTTP
// status of a refused handshake.
func dialProcess(t *testing.T, n *heraldtest.Node, query string) (*websocket.Conn, int, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial("ws://"+n.Addr()+"/ws/notifications/?"+query, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		return nil, status, err
	}
	t.Cleanup(func() { c.Close() })
	return c, http.StatusSwitchingProtocols, nil
}

// TestNodeKilledFreesUserSlots: with limits.per_user 1 on real herald
// processes sharing one Redis, the user's connection on node A blocks a
// second one on node B (also after several heartbeat periods: the limit is
// exact while nodes live). A is then SIGKILLed: it cannot release anything,
// and its lease would count for 30 s; B must accept the user's reconnect
// within 5 s, and refuse a second connection again after that.
func TestNodeKilledFreesUserSlots(t *testing.T) {
	rd := redistest.Start(t)
	cfg := processConfig(fmt.Sprintf(`fanout:
  broker: redis
  redis:
    shards: [%q]
    prefix: "kill:"
limits:
  per_user: 1
  per_user_policy: reject_new
`, rd.Addr()))
	a := heraldtest.StartNode(t, cfg)
	b := heraldtest.StartNode(t, cfg)
	tok := q("token", token(t, "solo", time.Hour))

	c, _, err := dialProcess(t, a, tok)
	if err != nil {
		t.Fatalf("first connection on A: %v", err)
	}
	readWS(t, c)
	for _, wait := range []time.Duration{0, fanout.NodeAliveTTL + time.Second} {
		time.Sleep(wait) // several heartbeats: A stays alive, its connection counts
		if _, status, err := dialProcess(t, b, tok); err == nil || status != http.StatusTooManyRequests {
			t.Fatalf("second connection on B after %v, A alive: status %d %v, want 429", wait, status, err)
		}
	}

	a.Kill()
	killed := time.Now()
	var status int
	for {
		var c2 *websocket.Conn
		c2, status, err = dialProcess(t, b, tok)
		if err == nil {
			readWS(t, c2)
			break
		}
		if status != http.StatusTooManyRequests {
			t.Fatalf("reconnect on B: status %d %v", status, err)
		}
		if time.Since(killed) > 5*time.Second {
			t.Fatalf("reconnect on B still refused (429) %v after A was SIGKILLed, want accepted within 5s", time.Since(killed).Round(time.Millisecond))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("reconnect accepted %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
	if _, status, err := dialProcess(t, b, tok); err == nil || status != http.StatusTooManyRequests {
		t.Fatalf("another connection after the reconnect: status %d %v, want 429", status, err)
	}
	if strings.Contains(b.Log(), "panic") {
		t.Fatalf("node B log:\n%s", b.Log())
	}
}

// TestPubSubRepeatAfterNodeRestart: with the channels_redis pubsub layer
// and the Redis broker, Django sends an event, the node restarts (SIGTERM,
// then in another run SIGKILL), the user reconnects, and Django sends the
// same event again (the same bytes): the user receives it. The broker
// still remembers the first one's idempotency key; it must not make the
// repeat a "duplicate".
func TestPubSubRepeatAfterNodeRestart(t *testing.T) {
	if exec.Command("/usr/bin/python3", "-c", "import channels_redis").Run() != nil {
		requireInCI(t, "python3-channels-redis not installed")
	}
	for _, sig := range []string{"SIGTERM", "SIGKILL"} {
		t.Run(sig, func(t *testing.T) {
			channels, broker := redistest.Start(t), redistest.Start(t)
			node := heraldtest.StartNode(t, processConfig(fmt.Sprintf(`fanout:
  broker: redis
  redis:
    shards: [%q]
compat:
  channels_redis:
    enabled: true
    layer: pubsub
    hosts: ["redis://%s"]
`, broker.Addr(), channels.Addr())))
			tok := q("token", token(t, "78", time.Hour))
			event := `{"type": "maintenance", "at": "22:00"}`
			sendAndReceive := func(what string) {
				t.Helper()
				ws, _, err := dialProcess(t, node, tok)
				if err != nil {
					t.Fatalf("%s: connect: %v", what, err)
				}
				readWS(t, ws)
				waitSubscribed(t, channels.Addr(), "asgi__group__user_78")
				out, err := exec.Command("/usr/bin/python3", "../compat/testdata/group_send_one.py", "pubsub",
					"redis://"+channels.Addr(), "user_78", event).Output()
				if err != nil {
					t.Fatalf("group_send_one.py: %v", err)
				}
				if got, want := string(readWS(t, ws)), strings.TrimSpace(string(out)); got != want {
					t.Fatalf("%s: received %s, want %s", what, got, want)
				}
				ws.Close()
			}
			sendAndReceive("first send")
			if sig == "SIGTERM" {
				node.Stop()
			} else {
				node.Kill()
			}
			node.Restart()
			sendAndReceive("the same event after a " + sig + " restart")
		})
	}
}

// waitSubscribed waits until some client subscribes to channel on the
// Redis at addr.
func waitSubscribed(t *testing.T, addr, channel string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := redistest.Do(addr, "PUBSUB", "NUMSUB", channel)
		if a, ok := r.([]any); err == nil && ok && len(a) == 2 && a[1] != int64(0) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nobody subscribed to %s within 10s: %v %v", channel, r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMemoryNodeRestartResumeGetsIngestedMessages is issue 12's "memory
// broker restart" as an operator meets it: a node with the memory broker
// and the channels_redis core ingest; an SSE client holds a cursor; the
// node is SIGKILLed and restarted (new epochs); Django's group_send sends
// the guide's 7 messages, which the restarted node ingests into user:42's
// new history (offsets 1-7 in /api/history) although nobody is connected;
// the client then resumes with Last-Event-ID and must get stream_reset
// epoch_changed followed by exactly those 7 messages, in order.
func TestMemoryNodeRestartResumeGetsIngestedMessages(t *testing.T) {
	if exec.Command("/usr/bin/python3", "-c", "import channels_redis").Run() != nil {
		requireInCI(t, "python3-channels-redis not installed")
	}
	channels := redistest.Start(t)
	node := heraldtest.StartNode(t, processConfig(fmt.Sprintf(`compat:
  channels_redis:
    enabled: true
    layer: core
    hosts: ["redis://%s"]
    lease_ttl: 1s
`, channels.Addr())))
	tok := token(t, "42", time.Hour)
	open := func(lastEventID string) (*http.Response, chan ssetest.Event) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+node.Addr()+"/sse/notifications/?"+q("token", tok), nil)
		if lastEventID != "" {
			req.Header.Set("Last-Event-ID", lastEventID)
		}
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("sse: %v %v", resp, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		evs := make(chan ssetest.Event, 64)
		go func() {
			defer close(evs)
			ssetest.Read(resp.Body, func(ev ssetest.Event) {
				if ev.Data != "" {
					evs <- ev
				}
			})
		}()
		return resp, evs
	}
	next := func(evs chan ssetest.Event) ssetest.Event {
		t.Helper()
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatal("sse stream ended")
			}
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no sse event within 10s")
		}
		return ssetest.Event{}
	}
	resp, evs := open("")
	next(evs) // connection_established
	waitMember(t, channels.Addr(), "asgi:group:user_42")
	code, body := postProcess(t, node, `{"user_id":"42","data":{"n":"before the restart"}}`)
	if code != 200 {
		t.Fatalf("publish: %d %s", code, body)
	}
	cursor := next(evs).ID
	resp.Body.Close()

	node.Kill()
	node.Restart()
	out, err := exec.Command("/usr/bin/python3", "../compat/testdata/group_send.py", "core",
		"redis://"+channels.Addr(), "user_42", "602").Output()
	if err != nil {
		t.Fatalf("group_send.py: %v", err)
	}
	want := strings.Split(strings.TrimSpace(string(out)), "\n")
	// The restarted node takes the inbox lease (the dead node's expires)
	// and ingests them into the new epoch's history.
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := getProcess(t, node, "/api/history?user_id=42")
		if code == 200 && strings.Count(body, `"offset":`) == len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history after the restart: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	_, evs = open(cursor)
	if ev := next(evs); !strings.Contains(ev.Data, "connection_established") {
		t.Fatalf("first event %s", ev.Data)
	}
	// One stream_reset per channel of the old cursor (user:42, broadcast),
	// then the messages.
	ev := next(evs)
	userReset := false
	for strings.Contains(ev.Data, `"stream_reset"`) {
		userReset = userReset || strings.Contains(ev.Data, `"epoch_changed","channel":"user:42"`)
		ev = next(evs)
	}
	if !userReset {
		t.Fatalf("no stream_reset epoch_changed for user:42 before %s", ev.Data)
	}
	for i, w := range want {
		if i > 0 {
			ev = next(evs)
		}
		if ev.Data != w {
			t.Fatalf("message %d after the reset: %s, want %s", i+1, ev.Data, w)
		}
	}
	code, body = postProcess(t, node, `{"user_id":"42","data":{"n":"live"}}`)
	if ev := next(evs); code != 200 || ev.Data != `{"n":"live"}` {
		t.Fatalf("after the 7 messages: %s (publish %d %s), want the live one once", ev.Data, code, body)
	}
}

// waitMember waits until the sorted set key on the Redis at addr has a
// member (a Herald node joined the group).
func waitMember(t *testing.T, addr, key string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if n, err := redistest.Do(addr, "ZCARD", key); err == nil && n != int64(0) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nobody joined %s within 10s", key)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func postProcess(t *testing.T, n *heraldtest.Node, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+n.Addr()+"/api/publish", strings.NewReader(body))
	req.Header.Set("X-API-Key", testAPIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func getProcess(t *testing.T, n *heraldtest.Node, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+n.Addr()+path, nil)
	req.Header.Set("X-API-Key", testAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
