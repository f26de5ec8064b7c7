package fanout

import (
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"
)

// blockingHandler records deliveries; the first one blocks until release
// is closed, as a fan-out stuck behind saturated writers would.
type blockingHandler struct {
	entered chan struct{} // closed when the first delivery starts
	release chan struct{}
	once    sync.Once
	rec     recorder
}

func newBlockingHandler() *blockingHandler {
	return &blockingHandler{entered: make(chan struct{}), release: make(chan struct{})}
}

func (h *blockingHandler) handle(m *Message) {
	first := false
	h.once.Do(func() { first = true; close(h.entered) })
	if first {
		<-h.release
	}
	h.rec.handle(m)
}

func (h *blockingHandler) waitCount(t *testing.T, ch string, n int) []*Message {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		h.rec.mu.Lock()
		var got []*Message
		for _, m := range h.rec.msgs {
			if m.Channel == ch {
				got = append(got, m)
			}
		}
		h.rec.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d messages delivered", ch, len(got), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPublishDoesNotWaitForDelivery checks that publishing never waits
// behind fan-out: while the delivery of a channel's first message is
// stuck, further publishes to that channel still return (each is in the
// history), and once delivery resumes every message arrives in order.
// With delivery on the publish path, the second publish would wait for
// the stuck one; nothing here is timed except a generous give-up.
func TestPublishDoesNotWaitForDelivery(t *testing.T) {
	for _, tc := range []struct {
		name string
		new  func(t *testing.T, h Handler) Broker
	}{
		{"memory", func(t *testing.T, h Handler) Broker {
			b, _ := newTestMemory(t, MemoryConfig{}, h)
			b.now = time.Now
			return b
		}},
		{"redis", func(t *testing.T, h Handler) Broker {
			_, addrs := startShards(t, 1)
			return newTestRedis(t, RedisConfig{Shards: addrs, Prefix: testPrefix(t)}, h)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newBlockingHandler()
			b := tc.new(t, h.handle)
			if err := b.Subscribe(bg, "ch"); err != nil {
				t.Fatal(err)
			}
			// In a goroutine: with delivery on the publish path this call
			// is the one that gets stuck.
			go b.Publish(bg, "ch", []byte("0"), PublishOptions{})
			select {
			case <-h.entered:
			case <-time.After(30 * time.Second):
				t.Fatal("first message never delivered")
			}
			const more = 50
			published := make(chan error, 1)
			go func() {
				for i := 1; i <= more; i++ {
					if _, err := b.Publish(bg, "ch", []byte(strconv.Itoa(i)), PublishOptions{}); err != nil {
						published <- err
						return
					}
				}
				published <- nil
			}()
			select {
			case err := <-published:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				close(h.release)
				t.Fatal("publishes waited for the stuck delivery")
			}
			if n := h.rec.count(); n != 0 {
				t.Fatalf("%d deliveries finished while the first was stuck", n)
			}
			close(h.release)
			ms := h.waitCount(t, "ch", more+1)
			for i, m := range ms {
				if string(m.Data) != strconv.Itoa(i) || m.Pos.Offset != ms[0].Pos.Offset+uint64(i) {
					t.Fatalf("delivery %d is %q at %v", i, m.Data, m.Pos)
				}
			}
		})
	}
}

// TestMemoryDeliveryOverflow checks what happens when publishers outrun a
// stuck delivery by more than the history holds: publishes still return,
// and delivery resumes with the oldest message the history still has, so
// subscribers see the skipped offsets as a gap that History reports gone
// (a session turns that into a stream_reset) — never a silent loss.
func TestMemoryDeliveryOverflow(t *testing.T) {
	h := newBlockingHandler()
	b, _ := newTestMemory(t, MemoryConfig{HistorySize: 10}, h.handle)
	if err := b.Subscribe(bg, "ch"); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, b, "ch", "0")
	<-h.entered
	for i := 1; i <= 30; i++ {
		mustPublish(t, b, "ch", strconv.Itoa(i))
	}
	close(h.release)
	ms := h.waitCount(t, "ch", 11)
	if got, want := offsets(ms), append([]uint64{1}, seq(22, 31)...); !equal(got, want) {
		t.Fatalf("delivered offsets %v, want %v", got, want)
	}
	_, err := b.History(bg, "ch", ms[0].Pos, 0)
	if !errors.Is(err, ErrHistoryGone) {
		t.Fatalf("History after the skipped offsets: %v, want ErrHistoryGone", err)
	}
	b.settle()
	if n := h.rec.count(); n != 11 {
		t.Fatalf("%d deliveries, want 11", n)
	}
}
