package fanout

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/redistest"
)

// Helpers the fanout tests share: a Handler that records what it receives,
// real redis-server shards, and checks on positions.

// collector records what a broker's Handler receives.
type collector struct {
	mu      sync.Mutex
	msgs    map[string][]*Message
	changed chan struct{}
}

func newCollector() *collector {
	return &collector{msgs: make(map[string][]*Message), changed: make(chan struct{}, 1)}
}

func (c *collector) handle(m *Message) {
	c.mu.Lock()
	c.msgs[m.Channel] = append(c.msgs[m.Channel], m)
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *collector) get(ch string) []*Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Message(nil), c.msgs[ch]...)
}

// waitFor waits until cond holds for the messages of ch.
func (c *collector) waitFor(t testing.TB, ch string, timeout time.Duration, cond func([]*Message) bool) []*Message {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if ms := c.get(ch); cond(ms) {
			return ms
		}
		select {
		case <-c.changed:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			ms := c.get(ch)
			t.Fatalf("channel %s: condition not met within %s; have %d messages: %s", ch, timeout, len(ms), positions(ms))
			return nil
		}
	}
}

func atLeast(n int) func([]*Message) bool { return func(ms []*Message) bool { return len(ms) >= n } }

func positions(ms []*Message) string {
	var b strings.Builder
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(m.Pos.String())
	}
	return b.String()
}

// testPrefix returns a key prefix unique to the test.
func testPrefix(t testing.TB) string {
	return fmt.Sprintf("ht%d%s:", rand.Uint32(), strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
}

func startShards(t testing.TB, n int) ([]*redistest.Server, []string) {
	var srvs []*redistest.Server
	var addrs []string
	for range n {
		s := redistest.Start(t)
		srvs = append(srvs, s)
		addrs = append(addrs, s.Addr())
	}
	return srvs, addrs
}

func newTestRedis(t testing.TB, cfg RedisConfig, h Handler) *RedisBroker {
	t.Helper()
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	b, err := NewRedis(ctx, cfg, h)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// channelsOn returns n channel names that map to shard idx of shards.
func channelsOn(prefix string, idx, shards, n int) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		ch := fmt.Sprintf("%s%d", prefix, i)
		if ShardIndex(ch, shards) == idx {
			out = append(out, ch)
		}
	}
	return out
}

func checkContiguous(t testing.TB, ch string, ms []*Message) {
	t.Helper()
	for i := 1; i < len(ms); i++ {
		p, c := ms[i-1].Pos, ms[i].Pos
		if c.Epoch == p.Epoch && c.Offset != p.Offset+1 {
			t.Fatalf("channel %s: offsets not contiguous: %s", ch, positions(ms))
		}
	}
}

func waitHealthy(t testing.TB, b *RedisBroker, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for b.Healthy(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("broker not healthy after %s: %v", timeout, b.Healthy(context.Background()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
