package fanout

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
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

func positionsOf(ms []*Message) []Position {
	out := make([]Position, len(ms))
	for i, m := range ms {
		out[i] = m.Pos
	}
	return out
}

// summarize prints positions as runs: "e:1-66 f:301-480".
func summarize(ps []Position) string {
	var b strings.Builder
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1].Epoch == ps[i].Epoch && ps[j+1].Offset == ps[j].Offset+1 {
			j++
		}
		fmt.Fprintf(&b, "%d:%d-%d ", ps[i].Epoch, ps[i].Offset, ps[j].Offset)
		i = j + 1
	}
	return b.String()
}

// gotInOrder waits up to timeout until cond holds for ch's messages and
// checks that exactly n came, with contiguous offsets.
func gotInOrder(t testing.TB, col *collector, ch string, n int, timeout time.Duration, cond func([]*Message) bool) {
	t.Helper()
	ms := col.waitFor(t, ch, timeout, cond)
	if len(ms) != n {
		t.Fatalf("%s: %d messages, want %d: %s", ch, len(ms), n, positions(ms))
	}
	checkContiguous(t, ch, ms)
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

// shardConfig starts n redis-server shards and returns a config for them
// under a key prefix unique to the test, with the servers.
func shardConfig(t testing.TB, n int) (RedisConfig, []*redistest.Server) {
	srvs, addrs := startShards(t, n)
	return RedisConfig{Shards: addrs, Prefix: testPrefix(t)}, srvs
}

// newSubscriber starts a broker on cfg delivering to a new collector and
// subscribes it to chans.
func newSubscriber(t testing.TB, cfg RedisConfig, chans ...string) (*RedisBroker, *collector) {
	t.Helper()
	col := newCollector()
	b := newTestRedis(t, cfg, col.handle)
	if len(chans) > 0 {
		if err := b.Subscribe(context.Background(), chans...); err != nil {
			t.Fatal(err)
		}
	}
	return b, col
}

// publishLoop publishes round after round, pause apart, the round's number
// to every channel of chans and hands each result to got (j indexes
// chans), until the returned stop is called; stop returns once the loop
// has ended.
func publishLoop(pub *RedisBroker, chans []string, pause time.Duration, got func(j int, r PublishResult, err error)) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-quit:
				return
			default:
			}
			for j, ch := range chans {
				r, err := pub.Publish(context.Background(), ch, []byte(strconv.Itoa(i)), PublishOptions{})
				got(j, r, err)
			}
			time.Sleep(pause)
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// deliveredOnce waits until ch's subscriber got want's last position, checks
// that the delivered offsets are contiguous and that nothing came twice,
// and returns the messages and the set of their positions.
func deliveredOnce(t testing.TB, col *collector, ch string, want []Position) ([]*Message, map[Position]bool) {
	t.Helper()
	ms := col.waitFor(t, ch, 10*time.Second, func(ms []*Message) bool {
		return len(ms) > 0 && ms[len(ms)-1].Pos == want[len(want)-1]
	})
	checkContiguous(t, ch, ms)
	got := make(map[Position]bool, len(ms))
	for _, m := range ms {
		if got[m.Pos] {
			t.Fatalf("%s: %s delivered twice", ch, m.Pos)
		}
		got[m.Pos] = true
	}
	return ms, got
}
