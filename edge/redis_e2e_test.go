package edge

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/internal/redistest"
)

// redisNodes starts n Herald nodes sharing the given Redis shards;
// extra adjusts each node's config further.
func redisNodes(t *testing.T, n int, shards []string, prefix string, extra ...func(*config.Config)) []*testServer {
	t.Helper()
	var nodes []*testServer
	for range n {
		nodes = append(nodes, startServer(t, func(c *config.Config) {
			c.Fanout.Broker = "redis"
			c.Fanout.Redis.Shards = shards
			c.Fanout.Redis.Prefix = prefix
			c.Fanout.Redis.ProbeInterval = 500 * time.Millisecond
			for _, f := range extra {
				f(c)
			}
		}))
	}
	return nodes
}

// TestRedisThreeNodes: a publish on node A reaches a WebSocket client on
// node B and an SSE client on node C, through 3 independent shards.
func TestRedisThreeNodes(t *testing.T) {
	var shards []string
	for range 3 {
		shards = append(shards, redistest.Start(t).Addr())
	}
	nodes := redisNodes(t, 3, shards, "e2e3:")
	a, b, c := nodes[0], nodes[1], nodes[2]

	ws := b.mustWS(t, q("token", token(t, "42", time.Hour)))
	readWS(t, ws)
	sse := c.mustSSE(t, q("token", token(t, "42", time.Hour)), "")
	sse.next(t)

	flow := guideFlow(700)
	for _, p := range flow {
		a.publishTo(t, "42", p)
	}
	a.publish(t, `{"channel":"broadcast","data":{"all":1}}`)
	for _, p := range append(flow, `{"all":1}`) {
		if got := string(readWS(t, ws)); got != p {
			t.Fatalf("ws on B: got %s want %s", got, p)
		}
		if ev := sse.next(t); ev.Data != p {
			t.Fatalf("sse on C: got %s want %s", ev.Data, p)
		}
	}
	code, ready := b.get(t, "/readyz")
	if code != 200 || len(ready["shards"].([]any)) != 3 {
		t.Fatalf("readyz %d %v", code, ready)
	}
}

// TestRedisResumeOnAnotherNode: a client leaves node A and resumes on node B
// from its cursor, receiving exactly what it missed.
func TestRedisResumeOnAnotherNode(t *testing.T) {
	shards := []string{redistest.Start(t).Addr(), redistest.Start(t).Addr()}
	nodes := redisNodes(t, 2, shards, "e2er:")
	tok := token(t, "7", time.Hour)
	s := nodes[0].mustSSE(t, q("token", tok), "")
	s.next(t)
	nodes[1].publishTo(t, "7", `{"n":1}`)
	id := s.next(t).ID
	s.resp.Body.Close()
	for i := 2; i <= 5; i++ {
		nodes[0].publishTo(t, "7", fmt.Sprintf(`{"n":%d}`, i))
	}
	w := nodes[1].mustWS(t, q("token", tok, "format", "envelope", "since", id))
	readWSJSON(t, w)
	for i := 2; i <= 5; i++ {
		env := readWSJSON(t, w)
		if env["data"].(map[string]any)["n"] != float64(i) {
			t.Fatalf("resumed on B: got %v, want n=%d", env, i)
		}
	}
	nodes[0].publishTo(t, "7", `{"n":6}`)
	if env := readWSJSON(t, w); env["data"].(map[string]any)["n"] != 6.0 {
		t.Fatalf("live after resume: %v", env)
	}
}

// TestRedisShardKilledMidStream: the shard holding a user's channel is
// killed with SIGKILL while the user is connected and restarted empty.
// The client stays connected and gets either every message or an explicit
// stream_reset: never a silent gap.
func TestRedisShardKilledMidStream(t *testing.T) {
	srv := redistest.Start(t)
	nodes := redisNodes(t, 2, []string{srv.Addr()}, "e2ek:")
	ws := nodes[1].mustWS(t, q("token", token(t, "3", time.Hour), "format", "envelope"))
	readWSJSON(t, ws)
	for i := 1; i <= 3; i++ {
		nodes[0].publishTo(t, "3", fmt.Sprintf(`{"n":%d}`, i))
	}
	for i := 1; i <= 3; i++ {
		readWSJSON(t, ws)
	}
	srv.Kill()
	code, _ := nodes[0].post(t, "/api/publish", testAPIKey, `{"user_id":"3","data":{"n":"lost"}}`)
	if code != 503 {
		t.Fatalf("publish with the shard down: %d, want 503", code)
	}
	// The other node notices the loss at its next probe at the latest.
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		code, _ := nodes[1].get(t, "/readyz")
		if code == 503 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("readyz with the shard down: %d", code)
		}
	}
	srv.Restart() // without its data: a new epoch
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, _ := nodes[0].post(t, "/api/publish", testAPIKey, `{"user_id":"3","data":{"n":4}}`)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("publishing did not recover after the shard restarted")
		}
		time.Sleep(200 * time.Millisecond)
	}
	var sawReset bool
	for {
		m := readWSJSON(t, ws)
		if m["type"] == "stream_reset" {
			if m["reason"] != "epoch_changed" {
				t.Fatalf("stream_reset after the shard lost its data: %v, want reason epoch_changed", m)
			}
			sawReset = true
			continue
		}
		if d, ok := m["data"].(map[string]any); ok && d["n"] == 4.0 {
			break
		}
		t.Fatalf("unexpected message after restart: %v", m)
	}
	if !sawReset {
		t.Fatal("the shard lost its data but the client got no stream_reset")
	}
}

// TestRedisSubscriptionsReturnToZero: after every client leaves, no node
// holds a Redis subscription for user or broadcast channels.
func TestRedisSubscriptionsReturnToZero(t *testing.T) {
	srv := redistest.Start(t)
	nodes := redisNodes(t, 2, []string{srv.Addr()}, "e2ez:")
	for i := range 10 {
		n := nodes[i%2]
		if i%3 == 0 {
			c := n.mustSSE(t, q("token", token(t, fmt.Sprint(i), time.Hour)), "")
			c.next(t)
			c.resp.Body.Close()
		} else {
			c := n.mustWS(t, q("token", token(t, fmt.Sprint(i), time.Hour)))
			readWS(t, c)
			c.Close()
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		total := 0
		for _, n := range nodes {
			total += n.srv.caps.redis.Subscriptions() + n.srv.Hub().Len()
		}
		// What remains are the control channels: one per node and the
		// shared one, each node subscribed to two.
		reply, _ := redistest.Do(srv.Addr(), "PUBSUB", "CHANNELS", "e2ez:chan:*")
		chans, _ := reply.([]any)
		others := 0
		for _, c := range chans {
			if !strings.HasPrefix(fmt.Sprint(c), "e2ez:chan:herald.node") {
				others++
			}
		}
		if total == 2*len(nodes) && others == 0 && len(chans) == len(nodes)+1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still subscribed: local %d, redis %v", total, reply)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRedisClusterNodes: two Herald nodes on a 3-master Redis Cluster
// (sharded pub/sub): a publish on one reaches clients on the other.
func TestRedisClusterNodes(t *testing.T) {
	seeds := redistest.StartCluster(t, 3)
	var nodes []*testServer
	for range 2 {
		nodes = append(nodes, startServer(t, func(c *config.Config) {
			c.Fanout.Broker = "redis"
			c.Fanout.Redis.Cluster = seeds
			c.Fanout.Redis.Prefix = "e2ec:"
		}))
	}
	for i := range 8 {
		user := fmt.Sprint("cu", i)
		ws := nodes[1].mustWS(t, q("token", token(t, user, time.Hour)))
		readWS(t, ws)
		nodes[0].publishTo(t, user, fmt.Sprintf(`{"to":%q}`, user))
		if got := string(readWS(t, ws)); got != fmt.Sprintf(`{"to":%q}`, user) {
			t.Fatalf("%s got %s", user, got)
		}
	}
	sse := nodes[0].mustSSE(t, q("token", token(t, "cu0", time.Hour)), "")
	sse.next(t)
	nodes[1].publish(t, `{"channel":"broadcast","data":{"all":1}}`)
	if ev := sse.next(t); ev.Data != `{"all":1}` {
		t.Fatalf("broadcast over cluster: %s", ev.Data)
	}
}

// TestRedisClusterWidePerUserLimit: the per-user limit counts connections
// on every node, in both policies. A dead node's connections stop counting
// within seconds: TestNodeKilledFreesUserSlots (real processes, SIGKILL).
func TestRedisClusterWidePerUserLimit(t *testing.T) {
	srv := redistest.Start(t)
	for _, policy := range []string{"reject_new", "evict_oldest"} {
		t.Run(policy, func(t *testing.T) {
			var nodes []*testServer
			for range 2 {
				nodes = append(nodes, startServer(t, func(c *config.Config) {
					c.Fanout.Broker = "redis"
					c.Fanout.Redis.Shards = []string{srv.Addr()}
					c.Fanout.Redis.Prefix = "e2eu" + policy + ":"
					c.Limits.PerUser = 2
					c.Limits.PerUserPolicy = policy
				}))
			}
			tok := token(t, "lim", time.Hour)
			first := nodes[0].mustWS(t, q("token", tok))
			readWS(t, first)
			second := nodes[1].mustSSE(t, q("token", tok), "")
			second.next(t)
			if policy == "reject_new" {
				_, resp, err := nodes[1].dialWS(t, q("token", tok), nil)
				if err == nil || resp.StatusCode != 429 {
					t.Fatalf("3rd connection on another node: %v %v", err, resp)
				}
				// After one leaves, a new one fits again.
				first.Close()
				deadline := time.Now().Add(5 * time.Second)
				for {
					c, _, err := nodes[1].dialWS(t, q("token", tok), nil)
					if err == nil {
						readWS(t, c)
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("slot not released: %v", err)
					}
					time.Sleep(50 * time.Millisecond)
				}
				return
			}
			third := nodes[1].mustWS(t, q("token", tok))
			readWS(t, third)
			// The oldest, on node 0, is evicted by node 1.
			_ = first.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				_, _, err := first.ReadMessage()
				if err != nil {
					if !websocketCloseCode(err, 4409) {
						t.Fatalf("oldest on the other node: want close 4409, got %v", err)
					}
					break
				}
			}
			n, err := nodes[0].srv.caps.redis.UserConns(t.Context(), "lim")
			if err != nil || n != 2 {
				t.Fatalf("cluster count %d %v, want 2", n, err)
			}
		})
	}
}
