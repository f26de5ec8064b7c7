package fanout

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMemorySweep(t *testing.T) {
	b, clk := newTestMemory(t, MemoryConfig{HistoryTTL: time.Minute, IdempotencyWindow: 5 * time.Minute}, nil)
	epochOf := func(ch string) uint32 {
		t.Helper()
		res, err := b.History(bg, ch, Position{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		return res.Top.Epoch
	}
	idle := epochOf("idle")                               // created by a History call, never used
	subscribed := epochOf("subscribed")                   // has a subscriber
	b.Subscribe(bg, "subscribed")                         //
	withMsgs := mustPublish(t, b, "with-msgs", "x").Epoch // retained messages
	b.Publish(bg, "with-key", []byte("x"), PublishOptions{IdempotencyKey: "k"})
	withKey := epochOf("with-key")

	// Within the TTL nothing is forgotten.
	clk.Add(30 * time.Second)
	b.sweep(clk.Now())
	for ch, e := range map[string]uint32{"idle": idle, "subscribed": subscribed, "with-msgs": withMsgs, "with-key": withKey} {
		if got := epochOf(ch); got != e {
			t.Fatalf("%s forgotten within the TTL", ch)
		}
	}
	// epochOf touched nothing: History does not count as use.
	clk.Add(31 * time.Second)
	b.sweep(clk.Now())
	if b.channel("idle", false) != nil {
		t.Fatal("idle channel not forgotten after the TTL")
	}
	if b.channel("with-msgs", false) != nil {
		t.Fatal("channel whose messages expired not forgotten")
	}
	if b.channel("subscribed", false) == nil || b.channel("with-key", false) == nil {
		t.Fatal("a subscribed channel or one with a live idempotency key was forgotten")
	}
	// A forgotten channel comes back in a new epoch: an old cursor gets a
	// stream_reset instead of silently missing messages.
	if got := epochOf("idle"); got == idle {
		t.Fatal("forgotten channel kept its epoch")
	}
	_, err := b.History(bg, "with-msgs", Position{Epoch: withMsgs, Offset: 1}, 0)
	if !errors.Is(err, ErrHistoryGone) || !errors.Is(err, ErrEpochChanged) {
		t.Fatalf("old cursor of a forgotten channel: %v", err)
	}
	// The subscribed channel stays until unsubscribed and idle for a TTL.
	b.Unsubscribe(bg, "subscribed")
	clk.Add(61 * time.Second)
	b.sweep(clk.Now())
	if b.channel("subscribed", false) != nil {
		t.Fatal("unsubscribed idle channel not forgotten")
	}
	// The idempotency key's channel goes once the key expired.
	clk.Add(5 * time.Minute)
	b.sweep(clk.Now())
	if b.channel("with-key", false) != nil {
		t.Fatal("channel not forgotten after its idempotency key expired")
	}
}

func TestMemorySweepRacesSubscribe(t *testing.T) {
	// A channel swept while Subscribe or Publish is between looking it up
	// and locking it must not swallow the subscription or the message:
	// a subscriber must receive every message published after Subscribe
	// returned.
	var delivered atomic.Int64
	b, clk := newTestMemory(t, MemoryConfig{HistoryTTL: time.Minute}, func(*Message) { delivered.Add(1) })
	const rounds, perRound = 20, 200
	for r := range rounds {
		names := make([]string, perRound)
		for i := range names {
			names[i] = fmt.Sprintf("r%d-c%d", r, i)
			b.History(bg, names[i], Position{}, 0) // exists, idle
		}
		clk.Add(2 * time.Minute) // every one of them is now sweepable
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					b.sweep(clk.Now())
				}
			}
		})
		for _, n := range names {
			if err := b.Subscribe(bg, n); err != nil {
				t.Fatal(err)
			}
		}
		close(stop)
		wg.Wait()
		before := delivered.Load()
		for _, n := range names {
			if b.Subscribers(n) != 1 {
				t.Fatalf("round %d: %s has %d subscribers after Subscribe", r, n, b.Subscribers(n))
			}
			mustPublish(t, b, n, "x")
		}
		b.settle()
		if got := delivered.Load() - before; got != perRound {
			t.Fatalf("round %d: %d of %d messages delivered to subscribed channels", r, got, perRound)
		}
	}
}
