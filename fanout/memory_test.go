package fanout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is an injectable MemoryBroker clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// recorder is a Handler that keeps what it was given.
type recorder struct {
	mu   sync.Mutex
	msgs []*Message
}

func (r *recorder) handle(m *Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// newTestMemory returns a broker on a fake clock, closed at the end of the
// test. The clock is set before anything reads it: the sweep goroutine
// reads it only on its 30s ticker, after these tests are done.
func newTestMemory(t testing.TB, cfg MemoryConfig, h Handler) (*MemoryBroker, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	b := NewMemory(cfg, h)
	b.now = clk.Now
	t.Cleanup(func() { b.Close() })
	return b, clk
}

var bg = context.Background()

func mustPublish(t testing.TB, b *MemoryBroker, ch, data string) Position {
	t.Helper()
	res, err := b.Publish(bg, ch, []byte(data), PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicate {
		t.Fatal("unexpected duplicate")
	}
	return res.Pos
}

func offsets(ms []*Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Pos.Offset
	}
	return out
}

func seq(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func equal(a, b []uint64) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func TestMemoryPublishOffsets(t *testing.T) {
	b, clk := newTestMemory(t, MemoryConfig{}, nil)
	var epoch uint32
	for i := uint64(1); i <= 10; i++ {
		res, err := b.Publish(bg, "ch", []byte(fmt.Sprintf(`{"n":%d}`, i)), PublishOptions{TraceParent: "00-tp"})
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			epoch = res.Pos.Epoch
		}
		if res.Pos != (Position{Epoch: epoch, Offset: i}) || res.Duplicate {
			t.Fatalf("publish %d: %+v", i, res)
		}
	}
	if epoch == 0 {
		t.Fatal("epoch 0")
	}
	// Channels are independent: another one starts at 1 in its own epoch.
	if p := mustPublish(t, b, "other", "1"); p.Offset != 1 || p.Epoch == 0 {
		t.Fatalf("other channel: %v", p)
	}
	res, err := b.History(bg, "ch", Position{Epoch: epoch}, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := res.Messages[3]
	if m.Channel != "ch" || string(m.Data) != `{"n":4}` || m.TraceParent != "00-tp" || m.PublishedAt != clk.Now().UnixNano() {
		t.Fatalf("message %+v", m)
	}
	if got := (Position{Epoch: 7, Offset: 9}).String(); got != "7:9" {
		t.Fatalf("Position.String() = %q", got)
	}
}

func TestMemoryHistory(t *testing.T) {
	b, _ := newTestMemory(t, MemoryConfig{}, nil)
	// A channel nobody published to has an epoch and top 0.
	res, err := b.History(bg, "ch", Position{}, 0)
	if err != nil || res.Top.Epoch == 0 || res.Top.Offset != 0 || len(res.Messages) != 0 {
		t.Fatalf("empty channel: %+v %v", res, err)
	}
	epoch := res.Top.Epoch
	for range 10 {
		if p := mustPublish(t, b, "ch", "x"); p.Epoch != epoch {
			t.Fatalf("publish after History changed the epoch: %v", p)
		}
	}
	top := Position{Epoch: epoch, Offset: 10}
	for _, tt := range []struct {
		since Position
		limit int
		want  []uint64
	}{
		{Position{}, 0, nil}, // epoch 0: the top only
		{Position{Epoch: epoch}, 0, seq(1, 10)},
		{Position{Epoch: epoch, Offset: 5}, 0, seq(6, 10)},
		{Position{Epoch: epoch, Offset: 5}, 3, seq(6, 8)},
		{Position{Epoch: epoch, Offset: 5}, 100, seq(6, 10)},
		{Position{Epoch: epoch, Offset: 5}, -1, seq(6, 10)},
		{Position{Epoch: epoch, Offset: 9}, 0, seq(10, 10)},
		{Position{Epoch: epoch, Offset: 10}, 0, nil},
	} {
		res, err := b.History(bg, "ch", tt.since, tt.limit)
		if err != nil {
			t.Fatalf("since %v limit %d: %v", tt.since, tt.limit, err)
		}
		if res.Top != top || !equal(offsets(res.Messages), tt.want) {
			t.Fatalf("since %v limit %d: top %v, offsets %v, want %v", tt.since, tt.limit, res.Top, offsets(res.Messages), tt.want)
		}
	}
	// The result is the caller's: changing it does not change history.
	res, _ = b.History(bg, "ch", Position{Epoch: epoch}, 0)
	res.Messages[0] = nil
	res, _ = b.History(bg, "ch", Position{Epoch: epoch}, 0)
	if res.Messages[0] == nil {
		t.Fatal("History returned the broker's own slice")
	}
}

func TestMemoryHistoryGone(t *testing.T) {
	b, _ := newTestMemory(t, MemoryConfig{HistorySize: 5}, nil)
	var top Position
	for range 12 {
		top = mustPublish(t, b, "ch", "x")
	}
	epoch := top.Epoch
	// Retained: 8..12.
	res, err := b.History(bg, "ch", Position{Epoch: epoch, Offset: 7}, 0)
	if err != nil || !equal(offsets(res.Messages), seq(8, 12)) {
		t.Fatalf("since 7: %v %v", offsets(res.Messages), err)
	}
	for _, tt := range []struct {
		name  string
		since Position
		epoch bool
	}{
		{"trimmed", Position{Epoch: epoch, Offset: 6}, false},
		{"trimmed from the start", Position{Epoch: epoch, Offset: 0}, false},
		{"ahead of top", Position{Epoch: epoch, Offset: 13}, false},
		{"far ahead", Position{Epoch: epoch, Offset: ^uint64(0)}, false},
		{"other epoch", Position{Epoch: epoch + 1, Offset: 12}, true},
		{"other epoch, offset 0", Position{Epoch: epoch ^ 0xffff, Offset: 0}, true},
	} {
		res, err := b.History(bg, "ch", tt.since, 0)
		if !errors.Is(err, ErrHistoryGone) {
			t.Fatalf("%s: err %v, want ErrHistoryGone", tt.name, err)
		}
		if errors.Is(err, ErrEpochChanged) != tt.epoch {
			t.Fatalf("%s: errors.Is(ErrEpochChanged) = %v", tt.name, !tt.epoch)
		}
		if res.Top != top || len(res.Messages) != 0 {
			t.Fatalf("%s: result %+v; Top must be set, no messages", tt.name, res)
		}
	}
}

func TestMemoryHistoryTTL(t *testing.T) {
	b, clk := newTestMemory(t, MemoryConfig{HistoryTTL: time.Minute}, nil)
	var epoch uint32
	for range 3 { // 1..3 at t0
		epoch = mustPublish(t, b, "ch", "old").Epoch
	}
	clk.Add(30 * time.Second)
	for range 2 { // 4..5 at t0+30s
		mustPublish(t, b, "ch", "new")
	}
	clk.Add(45 * time.Second) // t0+75s: 1..3 expired, 4..5 not
	if _, err := b.History(bg, "ch", Position{Epoch: epoch, Offset: 2}, 0); !errors.Is(err, ErrHistoryGone) || errors.Is(err, ErrEpochChanged) {
		t.Fatalf("since 2 after expiry: %v", err)
	}
	res, err := b.History(bg, "ch", Position{Epoch: epoch, Offset: 3}, 0)
	if err != nil || !equal(offsets(res.Messages), seq(4, 5)) {
		t.Fatalf("since 3: %v %v", offsets(res.Messages), err)
	}
	clk.Add(time.Hour) // everything expired
	if res, err := b.History(bg, "ch", Position{Epoch: epoch, Offset: 5}, 0); err != nil || len(res.Messages) != 0 || res.Top.Offset != 5 {
		t.Fatalf("up to date after expiry: %+v %v", res, err)
	}
	if _, err := b.History(bg, "ch", Position{Epoch: epoch, Offset: 4}, 0); !errors.Is(err, ErrHistoryGone) {
		t.Fatalf("since 4 after expiry: %v", err)
	}
	// Offsets continue after expiry; the epoch stays.
	if p := mustPublish(t, b, "ch", "again"); p != (Position{Epoch: epoch, Offset: 6}) {
		t.Fatalf("publish after expiry: %v", p)
	}
	res, err = b.History(bg, "ch", Position{Epoch: epoch, Offset: 5}, 0)
	if err != nil || !equal(offsets(res.Messages), seq(6, 6)) {
		t.Fatalf("since 5: %v %v", offsets(res.Messages), err)
	}
}

func TestMemoryIdempotency(t *testing.T) {
	b, clk := newTestMemory(t, MemoryConfig{IdempotencyWindow: time.Minute}, nil)
	first, err := b.Publish(bg, "ch", []byte("a"), PublishOptions{IdempotencyKey: "k1"})
	if err != nil || first.Duplicate {
		t.Fatal(first, err)
	}
	dup, err := b.Publish(bg, "ch", []byte("a-retry"), PublishOptions{IdempotencyKey: "k1"})
	if err != nil || !dup.Duplicate || dup.Pos != first.Pos {
		t.Fatalf("repeat: %+v %v, want %v duplicate", dup, err, first.Pos)
	}
	// Nothing was published by the repeat.
	res, _ := b.History(bg, "ch", Position{Epoch: first.Pos.Epoch}, 0)
	if len(res.Messages) != 1 || string(res.Messages[0].Data) != "a" {
		t.Fatalf("history after a duplicate: %v", offsets(res.Messages))
	}
	// Another key, and no key, publish.
	if r, _ := b.Publish(bg, "ch", []byte("b"), PublishOptions{IdempotencyKey: "k2"}); r.Duplicate || r.Pos.Offset != 2 {
		t.Fatalf("other key: %+v", r)
	}
	if r, _ := b.Publish(bg, "ch", []byte("c"), PublishOptions{}); r.Duplicate || r.Pos.Offset != 3 {
		t.Fatalf("no key: %+v", r)
	}
	// Keys are per channel.
	if r, _ := b.Publish(bg, "other", []byte("a"), PublishOptions{IdempotencyKey: "k1"}); r.Duplicate || r.Pos.Offset != 1 {
		t.Fatalf("same key, other channel: %+v", r)
	}
	// Within the window: still a duplicate.
	clk.Add(59 * time.Second)
	if r, _ := b.Publish(bg, "ch", []byte("a"), PublishOptions{IdempotencyKey: "k1"}); !r.Duplicate || r.Pos != first.Pos {
		t.Fatalf("inside the window: %+v", r)
	}
	// After the window the key publishes again, and is remembered anew.
	clk.Add(time.Second)
	again, _ := b.Publish(bg, "ch", []byte("a"), PublishOptions{IdempotencyKey: "k1"})
	if again.Duplicate || again.Pos.Offset != 4 {
		t.Fatalf("after the window: %+v", again)
	}
	if r, _ := b.Publish(bg, "ch", []byte("a"), PublishOptions{IdempotencyKey: "k1"}); !r.Duplicate || r.Pos != again.Pos {
		t.Fatalf("repeat after re-publish: %+v", r)
	}
	// Sweeping forgets expired keys only.
	clk.Add(30 * time.Second)
	b.sweep(clk.Now())
	if r, _ := b.Publish(bg, "ch", []byte("a"), PublishOptions{IdempotencyKey: "k1"}); !r.Duplicate {
		t.Fatalf("sweep forgot a live key: %+v", r)
	}
	clk.Add(time.Minute)
	b.sweep(clk.Now())
	c := b.channel("ch", false)
	c.mu.Lock()
	n := len(c.idem)
	c.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d idempotency keys left after their window", n)
	}
}

func TestMemorySubscribeRefcount(t *testing.T) {
	var rec recorder
	b, _ := newTestMemory(t, MemoryConfig{}, rec.handle)
	publish := func() { mustPublish(t, b, "ch", "x"); b.settle() }
	publish()
	if rec.count() != 0 {
		t.Fatal("delivered without a subscriber")
	}
	if err := b.Subscribe(bg, "ch", "ch"); err != nil { // two references at once
		t.Fatal(err)
	}
	if err := b.Subscribe(bg, "ch"); err != nil {
		t.Fatal(err)
	}
	if n := b.Subscribers("ch"); n != 3 {
		t.Fatalf("Subscribers = %d, want 3", n)
	}
	publish()
	if rec.count() != 1 {
		t.Fatalf("delivered %d times, want once per node", rec.count())
	}
	b.Unsubscribe(bg, "ch", "ch")
	publish()
	if rec.count() != 2 || b.Subscribers("ch") != 1 {
		t.Fatalf("after two unsubscribes: %d deliveries, %d subscribers", rec.count(), b.Subscribers("ch"))
	}
	b.Unsubscribe(bg, "ch")
	publish()
	if rec.count() != 2 || b.Subscribers("ch") != 0 {
		t.Fatalf("after the last unsubscribe: %d deliveries, %d subscribers", rec.count(), b.Subscribers("ch"))
	}
	// More unsubscribes than subscribes do not go below zero.
	if err := b.Unsubscribe(bg, "ch", "never-seen"); err != nil {
		t.Fatal(err)
	}
	if b.Subscribers("ch") != 0 || b.Subscribers("never-seen") != 0 {
		t.Fatal("negative or phantom subscribers")
	}
	b.Subscribe(bg, "ch")
	publish()
	if rec.count() != 3 {
		t.Fatal("not delivered after re-subscribing")
	}
	rec.mu.Lock()
	last := rec.msgs[2]
	rec.mu.Unlock()
	if last.Channel != "ch" || last.Pos.Offset != 5 {
		t.Fatalf("delivered %+v", last)
	}
}

func TestMemoryHandlerOrderUnderConcurrentPublishers(t *testing.T) {
	const publishers, perPublisher = 8, 200
	channels := []string{"a", "b", "c"}
	var mu sync.Mutex
	got := map[string][]*Message{}
	b, _ := newTestMemory(t, MemoryConfig{HistorySize: publishers * perPublisher}, func(m *Message) {
		mu.Lock()
		got[m.Channel] = append(got[m.Channel], m)
		mu.Unlock()
	})
	if err := b.Subscribe(bg, channels...); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range perPublisher {
				ch := channels[(p+i)%len(channels)]
				if _, err := b.Publish(bg, ch, []byte(fmt.Sprintf("%d/%d", p, i)), PublishOptions{}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.settle()
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, ch := range channels {
		ms := got[ch]
		total += len(ms)
		last := map[int]int{}
		for i, m := range ms {
			// The handler sees each channel's messages in offset order.
			if m.Pos.Offset != uint64(i+1) || m.Pos.Epoch != ms[0].Pos.Epoch {
				t.Fatalf("%s: delivery %d has position %v", ch, i, m.Pos)
			}
			// And each publisher's messages in the order it published them.
			var p, n int
			fmt.Sscanf(string(m.Data), "%d/%d", &p, &n)
			if prev, ok := last[p]; ok && n <= prev {
				t.Fatalf("%s: publisher %d's message %d after %d", ch, p, n, prev)
			}
			last[p] = n
		}
	}
	if total != publishers*perPublisher {
		t.Fatalf("%d deliveries, want %d", total, publishers*perPublisher)
	}
}

func TestMemoryInvalidChannels(t *testing.T) {
	b, _ := newTestMemory(t, MemoryConfig{}, nil)
	for _, name := range []string{"", strings.Repeat("a", MaxChannelLen+1), "a b", "a#b", "caf\u00e9", "a\x00", "a,b", "*", "a\nb"} {
		if _, err := b.Publish(bg, name, []byte("x"), PublishOptions{}); !errors.Is(err, ErrInvalidChannel) {
			t.Errorf("Publish(%q): %v", name, err)
		}
		if err := b.Subscribe(bg, name); !errors.Is(err, ErrInvalidChannel) {
			t.Errorf("Subscribe(%q): %v", name, err)
		}
		if _, err := b.History(bg, name, Position{}, 0); !errors.Is(err, ErrInvalidChannel) {
			t.Errorf("History(%q): %v", name, err)
		}
	}
	for _, name := range []string{"a", strings.Repeat("z", MaxChannelLen), "user:42", "org_1-x.y:z@h=q+r/s", "ABC019"} {
		if !ValidChannel(name) {
			t.Errorf("ValidChannel(%q) = false", name)
		}
		if _, err := b.Publish(bg, name, []byte("x"), PublishOptions{}); err != nil {
			t.Errorf("Publish(%q): %v", name, err)
		}
	}
	// One bad name fails the whole Subscribe: nothing is subscribed.
	if err := b.Subscribe(bg, "good", "bad name"); !errors.Is(err, ErrInvalidChannel) {
		t.Fatal(err)
	}
	if n := b.Subscribers("good"); n != 0 {
		t.Fatalf("partial subscribe: %d", n)
	}
}

func TestMemoryClose(t *testing.T) {
	b, _ := newTestMemory(t, MemoryConfig{}, nil)
	if err := b.Healthy(bg); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	if _, err := b.Publish(bg, "ch", []byte("x"), PublishOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish: %v", err)
	}
	if err := b.Subscribe(bg, "ch"); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe: %v", err)
	}
	if _, err := b.History(bg, "ch", Position{}, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("History: %v", err)
	}
	if err := b.Healthy(bg); !errors.Is(err, ErrClosed) {
		t.Errorf("Healthy: %v", err)
	}
	if err := b.Unsubscribe(bg, "ch"); err != nil {
		t.Errorf("Unsubscribe after Close: %v", err)
	}
}

func BenchmarkMemoryPublish(b *testing.B) {
	var n atomic.Int64
	br := NewMemory(MemoryConfig{}, func(*Message) { n.Add(1) })
	defer br.Close()
	if err := br.Subscribe(bg, "bench"); err != nil {
		b.Fatal(err)
	}
	data := []byte(`{"type":"notification","message":"hello"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Publish(bg, "bench", data, PublishOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	br.settle()
	if n.Load() == 0 {
		b.Fatal("nothing delivered")
	}
}
