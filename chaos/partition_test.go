package chaos

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPartitionSurface cuts the link between the Herald nodes and one
// shard (issue 12 item 6) three ways and checks what operators and
// backends see: /readyz turns 503 naming the shard; publishes to that
// shard's channels get 503 with an error naming the shard as unavailable;
// the other shard's publishes keep succeeding quickly and reach their
// clients; after the link returns everything recovers by itself. (What
// clients receive across the same faults is counted by TestChaos.)
func TestPartitionSurface(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	cases := []struct {
		name        string
		inject      func(e *Env)
		heal        func(e *Env)
		publishCode int // status of a publish to the cut shard once detected
	}{
		{"blackhole", func(e *Env) { e.Proxies[0].Blackhole() }, func(e *Env) { e.Proxies[0].Heal() }, 503},
		{"reset", func(e *Env) { e.Proxies[0].ResetPeer() }, func(e *Env) { e.Proxies[0].Heal() }, 503},
		{"refused", func(e *Env) { e.Proxies[0].Down() }, func(e *Env) { e.Proxies[0].Up() }, 503},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := Start(t, Topology{Nodes: 1, Shards: 2})
			node := e.Nodes[0]
			var cut, other string
			for i := 0; cut == "" || other == ""; i++ {
				u := strconv.Itoa(1000 + i)
				if e.ShardOf(u) == 0 && cut == "" {
					cut = u
				} else if e.ShardOf(u) == 1 && other == "" {
					other = u
				}
			}
			c := &Client{Name: "other", User: other, Kind: "ws", Resume: true, e: e, stop: make(chan struct{}), done: make(chan struct{})}
			go c.run()
			defer c.Stop()
			waitFor(t, 10*time.Second, "client connected", c.connected)

			tc.inject(e)
			shard := e.Proxies[0].Addr()
			waitFor(t, 10*time.Second, "/readyz reports the cut shard", func() bool {
				code, body := node.Get("/readyz")
				return code == 503 && strings.Contains(body, shard)
			})
			start := time.Now()
			code, body := node.Publish(cut, `{"n":1}`)
			if code != tc.publishCode || !strings.Contains(body, shard) || !strings.Contains(body, "unavailable") {
				t.Fatalf("publish to the cut shard: %d %s", code, body)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("publish to the cut shard took %s", d)
			}
			// Once the node knows the shard is down, publishes to it fail at
			// once (one every 250 ms still tries Redis).
			fast := 0
			for range 8 {
				start := time.Now()
				if code, body := node.Publish(cut, `{"n":1}`); code != 503 || !strings.Contains(body, "unavailable") {
					t.Fatalf("publish to the cut shard: %d %s", code, body)
				}
				if time.Since(start) < 100*time.Millisecond {
					fast++
				}
			}
			if fast < 4 {
				t.Fatalf("only %d of 8 publishes to the cut shard failed fast", fast)
			}
			for n := 1; n <= 10; n++ {
				start := time.Now()
				if code, body := node.Publish(other, `{"n":`+strconv.Itoa(n)+`}`); code != 200 {
					t.Fatalf("publish to the healthy shard during the cut: %d %s", code, body)
				}
				if d := time.Since(start); d > time.Second {
					t.Fatalf("publish to the healthy shard took %s during the cut", d)
				}
			}
			waitFor(t, 10*time.Second, "healthy shard's client got its messages", func() bool { return c.has(10) })

			tc.heal(e)
			waitFor(t, 15*time.Second, "/readyz recovers", func() bool {
				code, _ := node.Get("/readyz")
				return code == 200
			})
			waitFor(t, 10*time.Second, "publishes to the healed shard", func() bool {
				code, _ := node.Publish(cut, `{"n":2}`)
				return code == 200
			})
		})
	}
}
