package fanout

// Redis broker tests through faults: a shard restarted or killed
// mid-stream, messages missed or dropped, a pub/sub connection gone dead.

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/redistest"
)

// TestRedisEpochChangeAfterRestart restarts the only shard without
// persistence: History from the old position reports the epoch changed,
// and the next publish is offset 1 of the new epoch and is delivered.
func TestRedisEpochChangeAfterRestart(t *testing.T) {
	cfg, srvs := shardConfig(t, 1)
	pub := newTestRedis(t, cfg, nil)
	sub, col := newSubscriber(t, cfg, "c")
	ctx := context.Background()
	var last PublishResult
	var err error
	for i := range 3 {
		if last, err = pub.Publish(ctx, "c", []byte(strconv.Itoa(i)), PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	col.waitFor(t, "c", 5*time.Second, atLeast(3))
	old := last.Pos

	srvs[0].Restart()
	waitHealthy(t, sub, 15*time.Second)

	res, err := pub.History(ctx, "c", old, 0)
	if !errors.Is(err, ErrHistoryGone) || !errors.Is(err, ErrEpochChanged) {
		t.Fatalf("History after restart: %v", err)
	}
	if res.Top.Epoch == old.Epoch || res.Top.Epoch == 0 || res.Top.Offset != 0 {
		t.Fatalf("Top after restart: %s (old %s)", res.Top, old)
	}
	r, err := retryPublish(pub, "c", []byte(`"new"`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Pos != (Position{res.Top.Epoch, 1}) {
		t.Fatalf("publish after restart: %s, want %d:1", r.Pos, res.Top.Epoch)
	}
	ms := col.waitFor(t, "c", 10*time.Second, atLeast(4))
	if got := ms[len(ms)-1]; got.Pos != r.Pos || string(got.Data) != `"new"` {
		t.Fatalf("after restart got %s", positions(ms))
	}
}

// retryPublish retries while the shard is reconnecting.
func retryPublish(b *RedisBroker, ch string, data []byte) (PublishResult, error) {
	var err error
	for range 100 {
		var r PublishResult
		if r, err = b.Publish(context.Background(), ch, data, PublishOptions{}); err == nil {
			return r, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return PublishResult{}, err
}

// TestRedisKillRestartMidStream kills one of three shards while messages
// flow, restarts it empty, and checks that channels on the other shards
// were unaffected and that subscribers of the restarted shard see every
// acknowledged message and then the new epoch.
func TestRedisKillRestartMidStream(t *testing.T) {
	cfg, srvs := shardConfig(t, 3)
	cfg.ProbeInterval, cfg.CommandTimeout = 200*time.Millisecond, time.Second
	col := newCollector()
	pub := newTestRedis(t, cfg, nil)
	sub := newTestRedis(t, cfg, col.handle)
	ctx := context.Background()
	var chans []string
	for s := range 3 {
		chans = append(chans, channelsOn("live", s, 3, 3)...)
	}
	if err := sub.Subscribe(ctx, chans...); err != nil {
		t.Fatal(err)
	}

	type ack struct{ pos []Position }
	acks := make([]ack, len(chans))
	failedOther := 0 // read after stop: the loop has ended
	stop := publishLoop(pub, chans, 2*time.Millisecond, func(j int, r PublishResult, err error) {
		if err != nil {
			if ShardIndex(chans[j], 3) != 1 {
				failedOther++
			}
			return
		}
		acks[j].pos = append(acks[j].pos, r.Pos)
	})
	time.Sleep(300 * time.Millisecond)
	srvs[1].Kill()
	// Healthy names the shard that is down.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := sub.Healthy(ctx)
		if err != nil && strings.Contains(err.Error(), cfg.Shards[1]) && errors.Is(err, ErrShardUnavailable) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Healthy while shard 1 is down: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := sub.Subscribe(ctx, channelsOn("other", 1, 3, 1)...); !errors.Is(err, ErrShardUnavailable) {
		t.Fatalf("Subscribe on a down shard: %v", err)
	}
	if err := sub.Subscribe(ctx, channelsOn("other", 0, 3, 1)...); err != nil {
		t.Fatalf("Subscribe on a healthy shard: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	srvs[1].Restart()
	waitHealthy(t, sub, 15*time.Second)
	time.Sleep(300 * time.Millisecond)
	stop()

	if n := failedOther; n != 0 {
		t.Fatalf("%d publishes to healthy shards failed", n)
	}
	for j, ch := range chans {
		want := acks[j].pos
		if len(want) == 0 {
			t.Fatalf("%s: nothing published", ch)
		}
		ms, got := deliveredOnce(t, col, ch, want)
		// The shard restarted without persistence: the last messages of
		// its old epoch may have been acknowledged and then lost with it,
		// in flight to the subscriber. That is signalled (the epoch
		// changed), so it is allowed for the tail of the old epoch only.
		var lastOld Position
		for _, m := range ms {
			if m.Pos.Epoch == want[0].Epoch {
				lastOld = m.Pos
			}
		}
		for _, p := range want {
			if !got[p] && !(ShardIndex(ch, 3) == 1 && p.Epoch == lastOld.Epoch && p.Offset > lastOld.Offset && want[len(want)-1].Epoch != p.Epoch) {
				t.Fatalf("%s: acknowledged %s not delivered; got %s", ch, p, positions(ms))
			}
		}
		epochs := map[uint32]bool{}
		for _, p := range want {
			epochs[p.Epoch] = true
		}
		if shard := ShardIndex(ch, 3); (shard == 1) != (len(epochs) == 2) {
			t.Fatalf("%s on shard %d saw %d epochs", ch, shard, len(epochs))
		}
	}
	if st := sub.Stats(); st.Reconnects == 0 {
		t.Fatalf("Stats after a shard restart: %+v", st)
	}
}

// TestRedisRecoversMissedMessages cuts the subscriber's pub/sub connection
// (CLIENT KILL) while publishes continue; after reconnecting, the messages
// published meanwhile are read from the streams and delivered.
func TestRedisRecoversMissedMessages(t *testing.T) {
	cfg, _ := shardConfig(t, 1)
	chans := []string{"a", "b", "c"}
	pub := newTestRedis(t, cfg, nil)
	sub, col := newSubscriber(t, cfg, chans...)
	ctx := context.Background()
	for _, ch := range chans {
		if _, err := pub.Publish(ctx, ch, []byte(`0`), PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		col.waitFor(t, ch, 5*time.Second, atLeast(1))
	}
	// Block the reconnect long enough for publishes to be missed.
	if _, err := redistest.Do(cfg.Shards[0], "CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		for _, ch := range chans {
			if _, err := pub.Publish(ctx, ch, []byte(strconv.Itoa(i)), PublishOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, ch := range chans {
		gotInOrder(t, col, ch, 21, 10*time.Second, atLeast(21))
	}
	if st := sub.Stats(); st.Reconnects == 0 {
		t.Fatalf("no reconnect recorded: %+v", st)
	}
}

// TestRedisQueueOverflow fills a tiny inbound queue: dropped messages are
// re-read from the stream, so the subscriber still gets every message in
// order.
func TestRedisQueueOverflow(t *testing.T) {
	cfg, _ := shardConfig(t, 1)
	col := newCollector()
	slow := func(m *Message) { time.Sleep(200 * time.Microsecond); col.handle(m) }
	// The history must retain what the subscriber falls behind by.
	pub := newTestRedis(t, RedisConfig{Shards: cfg.Shards, Prefix: cfg.Prefix, HistorySize: 1000}, nil)
	sub := newTestRedis(t, RedisConfig{Shards: cfg.Shards, Prefix: cfg.Prefix, QueueSize: 4}, slow)
	ctx := context.Background()
	if err := sub.Subscribe(ctx, "x", "y"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, ch := range []string{"x", "y"} {
		wg.Go(func() {
			for i := range 300 {
				if _, err := pub.Publish(ctx, ch, []byte(strconv.Itoa(i)), PublishOptions{}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for _, ch := range []string{"x", "y"} {
		gotInOrder(t, col, ch, 300, 20*time.Second, func(ms []*Message) bool { return len(ms) > 0 && ms[len(ms)-1].Pos.Offset == 300 })
	}
	if st := sub.Stats(); st.Dropped == 0 || st.Recovered == 0 {
		t.Fatalf("expected drops and recoveries: %+v", st)
	}
}

// TestRedisProbeRebuilds stalls Redis (CLIENT PAUSE) longer than the
// command timeout: the idle pub/sub connection's probe is not echoed, the
// connection is rebuilt, and delivery works again afterwards.
func TestRedisProbeRebuilds(t *testing.T) {
	cfg, _ := shardConfig(t, 1)
	cfg.ProbeInterval, cfg.CommandTimeout = 100*time.Millisecond, 300*time.Millisecond
	sub, col := newSubscriber(t, cfg, "p")
	if _, err := redistest.Do(cfg.Shards[0], "CLIENT", "PAUSE", "1500", "ALL"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for sub.Stats().ProbeFailures == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no probe failure while Redis is paused: %+v", sub.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitHealthy(t, sub, 10*time.Second)
	r, err := retryPublish(sub, "p", []byte(`1`))
	if err != nil {
		t.Fatal(err)
	}
	ms := col.waitFor(t, "p", 5*time.Second, atLeast(1))
	if ms[0].Pos != r.Pos {
		t.Fatalf("got %s, want %s", ms[0].Pos, r.Pos)
	}
}
