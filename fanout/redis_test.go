package fanout

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/redistest"
)

func TestRedisPublishSubscribeShards(t *testing.T) {
	cfg, _ := shardConfig(t, 3)
	pub := newTestRedis(t, cfg, nil)
	c1, c2 := newCollector(), newCollector()
	n1 := newTestRedis(t, cfg, c1.handle)
	n2 := newTestRedis(t, cfg, c2.handle)

	var chans []string
	for s := range 3 {
		chans = append(chans, channelsOn("room", s, 3, 4)...)
	}
	ctx := context.Background()
	if err := n1.Subscribe(ctx, chans...); err != nil {
		t.Fatal(err)
	}
	if err := n2.Subscribe(ctx, chans[:6]...); err != nil {
		t.Fatal(err)
	}
	if got := n1.Subscriptions(); got != len(chans) {
		t.Fatalf("n1 Subscriptions = %d, want %d", got, len(chans))
	}
	const perChan = 20
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for i := range perChan {
		for _, ch := range chans {
			res, err := pub.Publish(ctx, ch, []byte(fmt.Sprintf(`{"i":%d}`, i)), PublishOptions{TraceParent: tp})
			if err != nil {
				t.Fatal(err)
			}
			if res.Pos.Offset != uint64(i+1) || res.Pos.Epoch == 0 || res.Duplicate {
				t.Fatalf("publish %s #%d: %+v", ch, i, res)
			}
		}
	}
	for i, ch := range chans {
		ms := c1.waitFor(t, ch, 5*time.Second, atLeast(perChan))
		if len(ms) != perChan {
			t.Fatalf("%s: got %d messages", ch, len(ms))
		}
		for j, m := range ms {
			if m.Pos.Offset != uint64(j+1) || string(m.Data) != fmt.Sprintf(`{"i":%d}`, j) || m.TraceParent != tp || m.Channel != ch {
				t.Fatalf("%s message %d: %+v", ch, j, m)
			}
			if d := time.Since(time.Unix(0, m.PublishedAt)); d < 0 || d > time.Minute {
				t.Fatalf("%s message %d: PublishedAt %d is off by %s", ch, j, m.PublishedAt, d)
			}
		}
		if i < 6 {
			c2.waitFor(t, ch, 5*time.Second, atLeast(perChan))
		} else if len(c2.get(ch)) != 0 {
			t.Fatalf("n2 got messages of %s it did not subscribe to", ch)
		}
	}
	hs := n1.ShardHealth()
	if len(hs) != 3 {
		t.Fatalf("ShardHealth: %+v", hs)
	}
	for i, h := range hs {
		if !h.Healthy || h.Addr != cfg.Shards[i] || h.Subscriptions != 4 {
			t.Fatalf("ShardHealth[%d] = %+v", i, h)
		}
	}
	if err := n1.Healthy(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRedisHistory(t *testing.T) {
	_, addrs := startShards(t, 2)
	prefix := testPrefix(t)
	a := newTestRedis(t, RedisConfig{Shards: addrs, Prefix: prefix, HistorySize: 10}, nil)
	b := newTestRedis(t, RedisConfig{Shards: addrs, Prefix: prefix, HistorySize: 10}, nil)
	ctx := context.Background()

	// A channel nobody published to yet has a stable epoch and offset 0.
	top0, err := b.History(ctx, "fresh", Position{}, 0)
	if err != nil || top0.Top.Epoch == 0 || top0.Top.Offset != 0 {
		t.Fatalf("History of a new channel: %+v, %v", top0, err)
	}
	r, err := a.Publish(ctx, "fresh", []byte(`1`), PublishOptions{})
	if err != nil || r.Pos != (Position{top0.Top.Epoch, 1}) {
		t.Fatalf("first publish %+v %v, want epoch %d offset 1", r, err, top0.Top.Epoch)
	}

	var last PublishResult
	for i := range 10 {
		if last, err = a.Publish(ctx, "news", []byte(strconv.Itoa(i)), PublishOptions{TraceParent: "tp"}); err != nil {
			t.Fatal(err)
		}
	}
	e := last.Pos.Epoch
	res, err := b.History(ctx, "news", Position{e, 3}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Top != last.Pos || len(res.Messages) != 7 || res.Messages[0].Pos != (Position{e, 4}) || string(res.Messages[6].Data) != "9" || res.Messages[0].TraceParent != "tp" || res.Messages[0].PublishedAt == 0 {
		t.Fatalf("History since 3: top %s, %d messages: %s", res.Top, len(res.Messages), positions(res.Messages))
	}
	if res, err = b.History(ctx, "news", Position{e, 3}, 2); err != nil || len(res.Messages) != 2 || res.Messages[1].Pos.Offset != 5 {
		t.Fatalf("History limit 2: %v %s", err, positions(res.Messages))
	}
	if res, err = b.History(ctx, "news", Position{e, 10}, 0); err != nil || len(res.Messages) != 0 {
		t.Fatalf("History at top: %v %d", err, len(res.Messages))
	}
	if res, err = b.History(ctx, "news", Position{}, 0); err != nil || res.Top != last.Pos || len(res.Messages) != 0 {
		t.Fatalf("History top only: %+v %v", res, err)
	}
	if res, err = b.History(ctx, "news", Position{e, 11}, 0); !errors.Is(err, ErrHistoryGone) || errors.Is(err, ErrEpochChanged) || res.Top != last.Pos {
		t.Fatalf("History ahead of top: %v", err)
	}
	if res, err = b.History(ctx, "news", Position{e + 1, 3}, 0); !errors.Is(err, ErrHistoryGone) || !errors.Is(err, ErrEpochChanged) || res.Top != last.Pos {
		t.Fatalf("History in another epoch: %v, top %s", err, res.Top)
	}
	// MAXLEN ~ trims in whole stream nodes (100 entries): publish enough
	// that the start is gone.
	for i := range 300 {
		if last, err = a.Publish(ctx, "busy", []byte(strconv.Itoa(i)), PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if res, err = b.History(ctx, "busy", Position{last.Pos.Epoch, 1}, 0); !errors.Is(err, ErrHistoryGone) || errors.Is(err, ErrEpochChanged) || res.Top != last.Pos {
		t.Fatalf("History of trimmed messages: %v", err)
	}
	if res, err = b.History(ctx, "busy", Position{last.Pos.Epoch, 295}, 0); err != nil || len(res.Messages) != 5 {
		t.Fatalf("History of recent messages: %v %s", err, positions(res.Messages))
	}
	if _, err = b.History(ctx, "bad channel", Position{}, 0); !errors.Is(err, ErrInvalidChannel) {
		t.Fatalf("invalid channel: %v", err)
	}
}

func TestRedisHistoryTTL(t *testing.T) {
	_, addrs := startShards(t, 1)
	prefix := testPrefix(t)
	b := newTestRedis(t, RedisConfig{Shards: addrs, Prefix: prefix, HistoryTTL: 300 * time.Millisecond}, nil)
	ctx := context.Background()
	r, err := b.Publish(ctx, "c", []byte(`1`), PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.History(ctx, "c", Position{r.Pos.Epoch, 0}, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	if _, err := b.History(ctx, "c", Position{r.Pos.Epoch, 0}, 0); !errors.Is(err, ErrHistoryGone) {
		t.Fatalf("History after the TTL: %v", err)
	}
}

func TestRedisIdempotency(t *testing.T) {
	_, addrs := startShards(t, 3)
	prefix := testPrefix(t)
	a := newTestRedis(t, RedisConfig{Shards: addrs, Prefix: prefix}, nil)
	b := newTestRedis(t, RedisConfig{Shards: addrs, Prefix: prefix}, nil)
	ctx := context.Background()
	first, err := a.Publish(ctx, "orders", []byte(`1`), PublishOptions{IdempotencyKey: "k1"})
	if err != nil || first.Duplicate {
		t.Fatal(first, err)
	}
	again, err := b.Publish(ctx, "orders", []byte(`1`), PublishOptions{IdempotencyKey: "k1"})
	if err != nil || !again.Duplicate || again.Pos != first.Pos {
		t.Fatalf("repeat: %+v %v, want duplicate of %s", again, err, first.Pos)
	}
	other, err := a.Publish(ctx, "payments", []byte(`1`), PublishOptions{IdempotencyKey: "k1"})
	if err != nil || other.Duplicate {
		t.Fatalf("same key on another channel: %+v %v", other, err)
	}
	// Concurrent repeats from several nodes: exactly one publishes.
	var published atomic.Int32
	var wg sync.WaitGroup
	var pos sync.Map
	for i := range 20 {
		n := a
		if i%2 == 1 {
			n = b
		}
		wg.Go(func() {
			r, err := n.Publish(ctx, "orders", []byte(`2`), PublishOptions{IdempotencyKey: "k2"})
			if err != nil {
				t.Error(err)
				return
			}
			if !r.Duplicate {
				published.Add(1)
			}
			pos.Store(r.Pos, true)
		})
	}
	wg.Wait()
	n := 0
	pos.Range(func(any, any) bool { n++; return true })
	if published.Load() != 1 || n != 1 {
		t.Fatalf("%d concurrent publishes were not duplicates, %d distinct positions", published.Load(), n)
	}
	res, err := a.History(ctx, "orders", Position{first.Pos.Epoch, 0}, 0)
	if err != nil || len(res.Messages) != 2 {
		t.Fatalf("history has %d messages, want 2: %v", len(res.Messages), err)
	}
}

func TestRedisUnsubscribeNoLeak(t *testing.T) {
	cfg, _ := shardConfig(t, 3)
	addrs, prefix := cfg.Shards, cfg.Prefix
	b, col := newSubscriber(t, cfg)
	ctx := context.Background()
	chans := make([]string, 300)
	for i := range chans {
		chans[i] = "leak" + strconv.Itoa(i)
	}
	if err := b.Subscribe(ctx, chans...); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe(ctx, chans[:100]...); err != nil {
		t.Fatal(err)
	}
	if b.Subscribers(chans[0]) != 2 || b.Subscriptions() != 300 {
		t.Fatalf("refs %d, subscriptions %d", b.Subscribers(chans[0]), b.Subscriptions())
	}
	b.Unsubscribe(ctx, chans...)
	waitSubs := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for b.Subscriptions() != want {
			if time.Now().After(deadline) {
				t.Fatalf("Subscriptions = %d, want %d", b.Subscriptions(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitSubs(100)
	// Still delivered while a reference is left.
	if _, err := b.Publish(ctx, chans[0], []byte(`1`), PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	col.waitFor(t, chans[0], 5*time.Second, atLeast(1))
	b.Unsubscribe(ctx, chans[:100]...)
	b.Unsubscribe(ctx, chans[:100]...) // extra unsubscribes are ignored
	waitSubs(0)
	for _, ch := range chans {
		if n := b.Subscribers(ch); n != 0 {
			t.Fatalf("%s has %d references", ch, n)
		}
	}
	for _, a := range addrs {
		got, err := redistest.Do(a, "PUBSUB", "CHANNELS", prefix+"chan:*")
		if err != nil || len(got.([]any)) != 0 {
			t.Fatalf("PUBSUB CHANNELS on %s: %v %v", a, got, err)
		}
		got, err = redistest.Do(a, "PUBSUB", "NUMSUB", prefix+"chan:"+chans[0])
		if err != nil || got.([]any)[1].(int64) != 0 {
			t.Fatalf("PUBSUB NUMSUB on %s: %v %v", a, got, err)
		}
	}
}

// TestRedisSubscribeBurst subscribes 10,000 channels from many goroutines
// at once: the subscriptions are coalesced into few SUBSCRIBE commands.
func TestRedisSubscribeBurst(t *testing.T) {
	cfg, srvs := shardConfig(t, 3)
	b, col := newSubscriber(t, cfg)
	ctx := context.Background()
	const n, workers = 10000, 200
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if err := b.Subscribe(ctx, "user:"+strconv.Itoa(i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if b.Subscriptions() != n {
		t.Fatalf("Subscriptions = %d", b.Subscriptions())
	}
	cmds := b.Stats().SubscribeCommands
	t.Logf("%d subscriptions in %s with %d SUBSCRIBE commands over 3 shards", n, took, cmds)
	if took > 5*time.Second {
		t.Fatalf("10,000 subscriptions took %s", took)
	}
	for _, s := range srvs {
		info, err := redistest.Do(s.Addr(), "INFO", "commandstats")
		if err != nil {
			t.Fatal(err)
		}
		calls := commandCalls(info.(string), "subscribe")
		if calls >= 100 {
			t.Fatalf("%s: %d SUBSCRIBE calls", s.Addr(), calls)
		}
	}
	for _, i := range []int{0, 4999, 9999} {
		ch := "user:" + strconv.Itoa(i)
		if _, err := b.Publish(ctx, ch, []byte(`1`), PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		col.waitFor(t, ch, 5*time.Second, atLeast(1))
	}
}

// commandCalls returns calls= of cmdstat_<name> in INFO commandstats.
func commandCalls(info, name string) int {
	for line := range strings.SplitSeq(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+name+":calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

func TestRedisCluster(t *testing.T) {
	seeds := redistest.StartCluster(t, 3)
	prefix := testPrefix(t)
	cfg := RedisConfig{Cluster: seeds[:1], Prefix: prefix, Partitions: 8}
	col := newCollector()
	pub := newTestRedis(t, cfg, nil)
	sub := newTestRedis(t, cfg, col.handle)
	ctx := context.Background()
	if hs := sub.ShardHealth(); len(hs) != 8 || hs[3].Addr != "cluster:p3" || !hs[3].Healthy {
		t.Fatalf("ShardHealth: %+v", hs)
	}
	chans := make([]string, 40)
	for i := range chans {
		chans[i] = "c" + strconv.Itoa(i)
	}
	if err := sub.Subscribe(ctx, chans...); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		for _, ch := range chans {
			r, err := pub.Publish(ctx, ch, []byte(strconv.Itoa(i)), PublishOptions{IdempotencyKey: ch + strconv.Itoa(i)})
			if err != nil || r.Pos.Offset != uint64(i+1) {
				t.Fatalf("publish %s: %+v %v", ch, r, err)
			}
		}
	}
	for _, ch := range chans {
		ms := col.waitFor(t, ch, 5*time.Second, atLeast(5))
		checkContiguous(t, ch, ms)
	}
	r, err := pub.Publish(ctx, chans[0], []byte(`0`), PublishOptions{IdempotencyKey: chans[0] + "0"})
	if err != nil || !r.Duplicate || r.Pos.Offset != 1 {
		t.Fatalf("duplicate publish: %+v %v", r, err)
	}
	res, err := sub.History(ctx, chans[7], Position{r.Pos.Epoch, 0}, 0)
	if err != nil && !errors.Is(err, ErrEpochChanged) {
		t.Fatal(err)
	}
	top, _ := sub.History(ctx, chans[7], Position{}, 0)
	if res, err = sub.History(ctx, chans[7], Position{top.Top.Epoch, 2}, 0); err != nil || len(res.Messages) != 3 {
		t.Fatalf("cluster history: %v %s", err, positions(res.Messages))
	}
	// Keys of one channel share a slot, and channels spread over nodes.
	nodes := map[string]bool{}
	for _, a := range seeds {
		got, err := redistest.Do(a, "PUBSUB", "SHARDCHANNELS", prefix+"*")
		if err != nil {
			t.Fatal(err)
		}
		if len(got.([]any)) > 0 {
			nodes[a] = true
		}
	}
	if len(nodes) < 2 {
		t.Fatalf("sharded subscriptions on %d nodes only", len(nodes))
	}
	sub.Unsubscribe(ctx, chans...)
	deadline := time.Now().Add(5 * time.Second)
	for sub.Subscriptions() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Subscriptions = %d after unsubscribing", sub.Subscriptions())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, a := range seeds {
		got, err := redistest.Do(a, "PUBSUB", "SHARDCHANNELS", prefix+"*chan:*")
		if err != nil || len(got.([]any)) != 0 {
			t.Fatalf("PUBSUB SHARDCHANNELS on %s: %v %v", a, got, err)
		}
	}
}

func TestRedisConfigErrors(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []RedisConfig{
		{},
		{Shards: []string{"127.0.0.1:1"}, Cluster: []string{"127.0.0.1:2"}},
		{Shards: []string{"127.0.0.1:1"}, Prefix: "a{b}"},
	} {
		if _, err := NewRedis(ctx, cfg, nil); err == nil {
			t.Errorf("NewRedis(%+v) succeeded", cfg)
		}
	}
	// No shard reachable.
	if _, err := NewRedis(ctx, RedisConfig{Shards: []string{"127.0.0.1:1"}, DialTimeout: 200 * time.Millisecond}, nil); err == nil {
		t.Error("NewRedis with no reachable shard succeeded")
	}
}

func TestRedisClosed(t *testing.T) {
	_, addrs := startShards(t, 1)
	b := newTestRedis(t, RedisConfig{Shards: addrs, Prefix: testPrefix(t)}, nil)
	ctx := context.Background()
	if err := b.Subscribe(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := b.Publish(ctx, "x", []byte(`1`), PublishOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if err := b.Subscribe(ctx, "x"); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if _, err := b.History(ctx, "x", Position{}, 0); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if err := b.Healthy(ctx); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	b.Close()
}
