package edge

import (
	"context"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/redistest"
)

// slowRenewals is the broker's real connection counter whose lease
// renewals take renewDelay, as renewing thousands of users on a loaded
// Redis does.
type slowRenewals struct {
	fanout.ConnCounter
	renewDelay time.Duration
}

func (s slowRenewals) RenewConns(ctx context.Context, conns map[string][]string, lease time.Duration) error {
	select {
	case <-time.After(s.renewDelay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.ConnCounter.RenewConns(ctx, conns, lease)
}

// TestHeartbeatNotHeldUpByRenewal: while a lease renewal takes longer
// than the liveness key lives (NodeAliveTTL), the node's heartbeats go on
// and its liveness key never lapses. Heartbeats used to share one loop
// with renewals: a 5 s renewal let the 3 s key expire, and every other
// node stopped counting this node's connections towards per-user limits.
// The first renewal runs connLease/3 (10 s) after start, so the key is
// watched from 9 s to 16 s.
func TestHeartbeatNotHeldUpByRenewal(t *testing.T) {
	srv := redistest.Start(t)
	const delay = 5 * time.Second
	ts := startServer(t, func(c *config.Config) {
		c.Fanout.Broker = "redis"
		c.Fanout.Redis.Shards = []string{srv.Addr()}
		c.Fanout.Redis.Prefix = "hb:"
	}, func(s *Server) {
		s.wrapCaps = func(c brokerCaps) brokerCaps { c.conns = slowRenewals{c.conns, delay}; return c }
	})
	start := time.Now()
	ws := ts.mustWS(t, q("token", token(t, "hb1", time.Hour))) // something to renew
	readWS(t, ws)
	cl, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	var key string
	for key == "" {
		keys, err := cl.Do(ctx, cl.B().Keys().Pattern("hb:*node:"+ts.srv.node).Build()).AsStrSlice()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 1 {
			key = keys[0]
		} else if time.Since(start) > 5*time.Second {
			t.Fatalf("no liveness key for node %s: %v", ts.srv.node, keys)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Until(start.Add(connLease/3 - time.Second)))
	for end := start.Add(connLease/3 + delay + time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		n, err := cl.Do(ctx, cl.B().Exists().Key(key).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("liveness key %s gone %s after start, during a %s lease renewal", key, time.Since(start).Round(time.Millisecond), delay)
		}
	}
}
