package fanout

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/faultproxy"
	"github.com/heraldrt/herald/internal/redistest"
)

// TestConnsOfDeadNodeStopCounting: a connection counts towards its user's
// limit while its node keeps its liveness key (NodeAlive), whatever its
// 30 s lease says, and stops counting within NodeAliveTTL once the node
// stops (a crash) — or at once after NodeGone. Sharded and cluster mode
// (where the liveness key lives in each partition's slot).
func TestConnsOfDeadNodeStopCounting(t *testing.T) {
	modes := map[string]func(t *testing.T) RedisConfig{
		"shards": func(t *testing.T) RedisConfig {
			_, addrs := startShards(t, 2)
			return RedisConfig{Shards: addrs, Prefix: testPrefix(t)}
		},
		"cluster": func(t *testing.T) RedisConfig {
			return RedisConfig{Cluster: redistest.StartCluster(t, 3)[:1], Prefix: testPrefix(t), Partitions: 4}
		},
	}
	for name, mode := range modes {
		t.Run(name, func(t *testing.T) {
			b := newTestRedis(t, mode(t), nil)
			ctx := context.Background()
			acquire := func(user, conn string) bool {
				t.Helper()
				_, ok, err := b.AcquireConn(ctx, user, conn, 1, false, 30*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				return ok
			}
			// Node "na" (alive, heartbeating) holds u1's slot; node "nd"
			// holds u2's and dies (no heartbeat after its acquire).
			if !acquire("u1", "na.1") || !acquire("u2", "nd.1") {
				t.Fatal("first connections refused")
			}
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					if err := b.NodeAlive(ctx, "na"); err != nil {
						t.Error(err)
					}
					select {
					case <-stop:
						return
					case <-time.After(NodeAliveTTL / 4):
					}
				}
			}()
			defer func() { close(stop); <-done }()
			if acquire("u1", "nb.1") || acquire("u2", "nb.1") {
				t.Fatal("second connections admitted while both nodes count as alive")
			}
			start := time.Now()
			for !acquire("u2", "nb.1") {
				if time.Since(start) > NodeAliveTTL+2*time.Second {
					t.Fatalf("dead node's connection still counts after %v", time.Since(start))
				}
				time.Sleep(100 * time.Millisecond)
			}
			if acquire("u1", "nb.1") {
				t.Fatal("a heartbeating node's connection stopped counting")
			}
			if n, _ := b.UserConns(ctx, "u1"); n != 1 {
				t.Fatalf("u1 holds %d connections, want 1", n)
			}
			// A node that shuts down frees its slots at once.
			if err := b.NodeGone(ctx, "nb"); err != nil {
				t.Fatal(err)
			}
			if !acquire("u2", "nc.1") {
				t.Fatal("connection of a node that called NodeGone still counts")
			}
		})
	}
}

// TestConnLeaseExpiryAndRenewal: a live node's connection counts while
// RenewConns extends its lease and stops counting once the lease runs out
// without renewal; RenewConns re-registers a connection a restarted shard
// forgot.
func TestConnLeaseExpiryAndRenewal(t *testing.T) {
	srvs, addrs := startShards(t, 1)
	b := newTestRedis(t, RedisConfig{Shards: addrs, Prefix: testPrefix(t)}, nil)
	ctx := context.Background()
	const lease = 600 * time.Millisecond
	acquire := func(user, conn string) bool {
		t.Helper()
		_, ok, err := b.AcquireConn(ctx, user, conn, 1, false, lease)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !acquire("renewed", "na.1") || !acquire("lapsed", "na.2") {
		t.Fatal("first connections refused")
	}
	// Node na stays alive; only "renewed"'s lease is renewed.
	for end := time.Now().Add(3 * lease); time.Now().Before(end); time.Sleep(lease / 4) {
		if err := b.NodeAlive(ctx, "na"); err != nil {
			t.Fatal(err)
		}
		if err := b.RenewConns(ctx, map[string][]string{"renewed": {"na.1"}}, lease); err != nil {
			t.Fatal(err)
		}
	}
	if acquire("renewed", "nb.1") {
		t.Fatal("a renewed lease stopped counting")
	}
	if !acquire("lapsed", "nb.1") {
		t.Fatal("a lease not renewed for 3 lease periods still counts")
	}
	// The shard restarts empty: the next renewal and heartbeat (retried, as
	// the node does periodically: a pooled connection may still be the
	// old server's) put the connection back.
	srvs[0].Restart()
	deadline := time.Now().Add(10 * time.Second)
	for b.RenewConns(ctx, map[string][]string{"renewed": {"na.1"}}, time.Minute) != nil || b.NodeAlive(ctx, "na") != nil {
		if time.Now().After(deadline) {
			t.Fatal("RenewConns/NodeAlive failed for 10s after the shard restart")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Other pooled connections may still be the old server's too: a
	// command failing with a connection error is retried, as the node's
	// next connect would be; the answers are what is checked.
	retry := func(what string, f func() error) {
		t.Helper()
		var err error
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if err = f(); err == nil {
				return
			}
		}
		t.Fatalf("%s after the shard restart: %v", what, err)
	}
	var n int
	retry("UserConns", func() (err error) { n, err = b.UserConns(ctx, "renewed"); return err })
	if n != 1 {
		t.Fatalf("after the restart and a renewal: %d connections; want 1", n)
	}
	var ok bool
	retry("AcquireConn", func() (err error) { _, ok, err = b.AcquireConn(ctx, "renewed", "nb.1", 1, false, lease); return err })
	if ok {
		t.Fatal("a re-registered connection does not count")
	}
}

// TestRenewConnsManyUsersOverSlowLink: a node with thousands of users
// renews all their leases within one renewal period even when every round
// trip to Redis costs milliseconds. Renewing user by user took one round
// trip each (2,000 × 2 × 5 ms = 20 s here), ran out of the node's 10 s
// budget and logged one failure per remaining user; the renewals are now
// pipelined in batches. Every lease is checked afterwards.
func TestRenewConnsManyUsersOverSlowLink(t *testing.T) {
	_, addrs := startShards(t, 1)
	px := faultproxy.Start(t, addrs[0])
	b := newTestRedis(t, RedisConfig{Shards: []string{px.Addr()}, Prefix: testPrefix(t)}, nil)
	ctx := context.Background()
	const users = 2000
	conns := make(map[string][]string, users)
	for i := range users {
		conns[fmt.Sprintf("u%d", i)] = []string{fmt.Sprintf("na.%d", i)}
	}
	if err := b.NodeAlive(ctx, "na"); err != nil {
		t.Fatal(err)
	}
	px.Delay(5 * time.Millisecond)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second) // the node's budget: connLease/3
	defer cancel()
	if err := b.RenewConns(rctx, conns, time.Minute); err != nil {
		t.Fatalf("renewing %d users over a 5 ms link: %v", users, err)
	}
	px.Heal()
	// Every connection was registered by its renewal (none existed): each
	// user now holds exactly one, and a second one over a limit of 1 is
	// refused.
	for _, u := range []string{"u0", "u999", "u1999"} {
		if n, err := b.UserConns(ctx, u); err != nil || n != 1 {
			t.Fatalf("%s holds %d connections (err %v); want 1", u, n, err)
		}
		if _, ok, err := b.AcquireConn(ctx, u, "nb.1", 1, false, time.Minute); err != nil || ok {
			t.Fatalf("%s: a second connection over the limit admitted=%v (err %v)", u, ok, err)
		}
	}
}
