package protocols

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/fanout"
)

func TestSessionResumeOverlapWithLive(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	ms := h.publishN("ch", 5)
	opts := sseOpts("u", "ch")
	opts.Since = Cursor{{Hash: ChannelHash("ch"), Pos: ms[1].Pos}}
	// Registered with the hub: live messages arrive before Resume reads
	// history, and history returns them too.
	s := h.resumed(opts, ms[3], ms[4])
	m6 := h.publish("ch", payload("ch", 6))
	s.Enqueue(ms[4]) // late duplicate
	s.Enqueue(m6)
	cl := newSSEClient(t, h.attach(s))
	_, ev := cl.expectEvent("connection_established")
	checkCursor(t, ev.ID, "ch", ms[1].Pos)
	cl.expectMessages(ms[2], ms[3], ms[4], m6)
	m7 := h.publish("ch", payload("ch", 7))
	s.Enqueue(m7)
	cl.expectMessage(m7)
}

func TestSessionGapFilledFromHistory(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	s, cl, _ := h.openSSE(sseOpts("u", "ch"))
	ms := h.publishN("ch", 6)
	enqueue(s, ms[0], ms[1], ms[4]) // 3 and 4 were lost on the way
	cl.expectMessages(ms[0], ms[1], ms[2], ms[3], ms[4])
	s.Enqueue(ms[5])
	cl.expectMessage(ms[5])
}

func TestSessionGapHistoryGone(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{HistorySize: 2})
	s, cl, _ := h.openSSE(sseOpts("u", "ch"))
	ms := h.publishN("ch", 5) // history keeps only 4 and 5
	enqueue(s, ms[0], ms[4])
	cl.expectMessage(ms[0])
	reset, ev := cl.expectEvent("stream_reset")
	if reset["channel"] != "ch" || reset["reason"] != "history_expired" {
		t.Fatalf("stream_reset = %s", ev.Data)
	}
	checkCursor(t, ev.ID, "ch", ms[0].Pos)
	cl.expectMessage(ms[4])
	m6 := h.publish("ch", payload("ch", 6))
	s.Enqueue(m6)
	cl.expectMessage(m6) // one reset, then the stream continues
}

func TestSessionGapAheadOfHistory(t *testing.T) {
	// A message history does not know yet (a lagging replica): one retry,
	// then a stream_reset and delivery, never a retry loop.
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	s, cl, _ := h.openSSE(sseOpts("u", "ch"))
	ms := h.publishN("ch", 2)
	s.Enqueue(ms[0])
	ahead := &fanout.Message{Channel: "ch", Pos: fanout.Position{Epoch: ms[0].Pos.Epoch, Offset: 9}, Data: []byte(`{"n":9}`)}
	s.Enqueue(ahead)
	cl.expectMessages(ms[0], ms[1]) // history filled what it had
	if r, ev := cl.expectEvent("stream_reset"); r["reason"] != "history_expired" {
		t.Fatalf("stream_reset = %s", ev.Data)
	}
	cl.expectMessage(ahead)
}

func TestSessionEpochChange(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	s, cl, _ := h.openSSE(sseOpts("u", "ch"))
	ms := h.publishN("ch", 2)
	enqueue(s, ms[0], ms[1])
	cl.expectMessages(ms...)
	// The channel's history was lost and restarted (a Redis shard restart).
	epoch := ms[0].Pos.Epoch + 1
	n1 := &fanout.Message{Channel: "ch", Pos: fanout.Position{Epoch: epoch, Offset: 1}, Data: []byte(`{"e":1}`)}
	n2 := &fanout.Message{Channel: "ch", Pos: fanout.Position{Epoch: epoch, Offset: 2}, Data: []byte(`{"e":2}`)}
	enqueue(s, n1, n2)
	reset, ev := cl.expectEvent("stream_reset")
	if reset["reason"] != "epoch_changed" || reset["channel"] != "ch" {
		t.Fatalf("stream_reset = %s", ev.Data)
	}
	cl.expectMessages(n1, n2)
	// A duplicate of the new epoch is still dropped.
	s.Enqueue(n2)
	n3 := &fanout.Message{Channel: "ch", Pos: fanout.Position{Epoch: epoch, Offset: 3}, Data: []byte(`{"e":3}`)}
	s.Enqueue(n3)
	cl.expectMessage(n3)
}

func TestSessionResumeFromCursor(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	a := h.publishN("a", 10)
	b := h.publishN("b", 3)
	opts := sseOpts("u", "a", "b", "c")
	// The client saw a up to 6 and b up to 3 (all of it); it never had c.
	// An entry for a channel the connection no longer has is ignored.
	opts.Since = Cursor{
		{Hash: ChannelHash("gone"), Pos: fanout.Position{Epoch: 1, Offset: 1}},
		{Hash: ChannelHash("a"), Pos: a[5].Pos},
		{Hash: ChannelHash("b"), Pos: b[2].Pos},
	}
	h.publishN("c", 2)
	s, cl, ev := h.openSSE(opts)
	checkCursor(t, ev.ID, "a", a[5].Pos)
	checkCursor(t, ev.ID, "c", h.top("c"))
	cl.expectMessages(a[6:]...) // exactly the missed messages
	b4 := h.publish("b", payload("b", 4))
	s.Enqueue(b4)
	cl.expectMessage(b4)
	// The cursor the client holds now resumes a new connection exactly.
	since, err := ParseCursor(cl.p.lastID)
	if err != nil {
		t.Fatal(err)
	}
	a11 := h.publish("a", payload("a", 11))
	opts.Since = since
	opts.ID = 2
	_, cl2, _ := h.openSSE(opts)
	cl2.expectMessage(a11)
}

func TestSessionResumeUnresumableCursor(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{HistorySize: 3})
	ms := h.publishN("ch", 10)
	epoch := ms[0].Pos.Epoch
	for _, tt := range []struct {
		name   string
		since  fanout.Position
		reason string
	}{
		{"other epoch", fanout.Position{Epoch: epoch ^ 0x5a5a, Offset: 9}, "epoch_changed"},
		{"ahead of top", fanout.Position{Epoch: epoch, Offset: 50}, "history_expired"},
		{"trimmed", fanout.Position{Epoch: epoch, Offset: 2}, "history_expired"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := sseOpts("u", "ch")
			opts.Since = Cursor{{Hash: ChannelHash("ch"), Pos: tt.since}}
			s, cl, _ := h.openSSE(opts)
			reset, ev := cl.expectEvent("stream_reset")
			if reset["reason"] != tt.reason || reset["channel"] != "ch" {
				t.Fatalf("stream_reset = %s", ev.Data)
			}
			// The session adopted the channel top: no replay, the next
			// event is the next live message.
			checkCursor(t, ev.ID, "ch", h.top("ch"))
			m := h.publish("ch", payload("ch", 0))
			s.Enqueue(m)
			cl.expectMessage(m)
		})
	}
}

// epochHistory is a Historian over scripted epochs of one channel: the
// last epoch is the channel's current one.
type epochHistory struct {
	mu     sync.Mutex
	epochs map[uint32][]*fanout.Message // offsets 1..n
	cur    uint32
}

func (e *epochHistory) History(_ context.Context, _ string, since fanout.Position, _ int) (fanout.HistoryResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	msgs := e.epochs[e.cur]
	res := fanout.HistoryResult{Top: fanout.Position{Epoch: e.cur, Offset: uint64(len(msgs))}}
	switch {
	case since.Epoch == 0:
		return res, nil
	case since.Epoch != e.cur:
		return res, fanout.ErrHistoryGone
	case since.Offset > uint64(len(msgs)):
		return res, fanout.ErrHistoryGone
	}
	res.Messages = append(res.Messages, msgs[since.Offset:]...)
	return res, nil
}

func (e *epochHistory) add(epoch uint32, n int) []*fanout.Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cur = epoch
	for range n {
		off := uint64(len(e.epochs[epoch]) + 1)
		e.epochs[epoch] = append(e.epochs[epoch], &fanout.Message{Channel: "ch", Pos: fanout.Position{Epoch: epoch, Offset: off},
			Data: []byte(payload("ch", off+uint64(epoch)*1000))})
	}
	return e.epochs[epoch]
}

func TestSessionGapAfterEpochChangeIsRecovered(t *testing.T) {
	// A gap recovered in one epoch must not make a gap at the same offset
	// in the next epoch look unrecoverable.
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	hist := &epochHistory{epochs: map[uint32][]*fanout.Message{}, cur: 10}
	h.env.History = hist
	s, cl, _ := h.openSSE(sseOpts("u", "ch"))
	old := hist.add(10, 3)
	enqueue(s, old[0], old[2]) // gap at offset 3, filled from history
	cl.expectMessages(old...)
	nw := hist.add(11, 3)
	s.Enqueue(nw[2]) // new epoch; 1 and 2 of it were lost on the way
	if r, ev := cl.expectEvent("stream_reset"); r["reason"] != "epoch_changed" {
		t.Fatalf("stream_reset = %s", ev.Data)
	}
	cl.expectMessages(nw...)
	assertDrained(t, s)
}

type failingHistory struct{ Historian }

func (f failingHistory) History(ctx context.Context, ch string, since fanout.Position, limit int) (fanout.HistoryResult, error) {
	if since.Epoch == 0 {
		return f.Historian.History(ctx, ch, since, limit)
	}
	return fanout.HistoryResult{}, context.DeadlineExceeded
}

func TestSessionGapHistoryErrorClosesInternal(t *testing.T) {
	for _, nilLog := range []bool{false, true} {
		h := newHarness(t, Config{}, fanout.MemoryConfig{})
		h.env.History = failingHistory{h.broker}
		if nilLog {
			h.env.Log = nil
		}
		s, cl, _ := h.openSSE(sseOpts("u", "ch"))
		ms := h.publishN("ch", 3)
		enqueue(s, ms[0], ms[2]) // gap; the history read fails
		cl.expectMessage(ms[0])
		ev, raw := cl.expectEvent("disconnect")
		if ev["reason"] != "internal_error" || ev["reconnect"] != true {
			t.Fatalf("disconnect = %s", raw.Data)
		}
		checkCursor(t, raw.ID, "ch", ms[0].Pos) // resume from what was written
		cl.expectEOF()
		waitDone(t, s)
	}
}

// overlapHistory is the memory broker's history with every read held until
// want reads are in flight at once (or 5 s pass), so a test sees
// whether Resume issues its reads together or one after another.
type overlapHistory struct {
	*fanout.MemoryBroker
	want int

	mu       sync.Mutex
	inFlight int
	most     int
	all      chan struct{}
}

func (o *overlapHistory) History(ctx context.Context, ch string, since fanout.Position, limit int) (fanout.HistoryResult, error) {
	o.mu.Lock()
	o.inFlight++
	o.most = max(o.most, o.inFlight)
	if o.inFlight == o.want {
		close(o.all)
	}
	o.mu.Unlock()
	select {
	case <-o.all:
	case <-time.After(5 * time.Second): // reads one after another: fail in seconds, not minutes
	}
	defer func() {
		o.mu.Lock()
		o.inFlight--
		o.mu.Unlock()
	}()
	return o.MemoryBroker.History(ctx, ch, since, limit)
}

// TestSessionResumeReadsChannelsAtOnce: a connection's history reads (one
// per channel) are in flight together, so with Redis a connect costs one
// round trip for all of them; the replay is still exact and in channel
// order.
func TestSessionResumeReadsChannelsAtOnce(t *testing.T) {
	h := newHarness(t, Config{}, fanout.MemoryConfig{})
	a := h.publishN("a", 4)
	b := h.publishN("b", 4)
	oh := &overlapHistory{MemoryBroker: h.broker, want: 3, all: make(chan struct{})}
	h.env.History = oh
	opts := sseOpts("u", "a", "b", "c")
	opts.Since = Cursor{{Hash: ChannelHash("a"), Pos: a[1].Pos}, {Hash: ChannelHash("b"), Pos: b[2].Pos}}
	start := time.Now()
	_, c := h.open(opts)
	if oh.most != 3 {
		t.Fatalf("at most %d history reads in flight at once, want all 3 (took %s)", oh.most, time.Since(start))
	}
	cl := newSSEClient(t, c)
	cl.expectEvent("connection_established")
	cl.expectMessages(append(append([]*fanout.Message(nil), a[2:]...), b[3:]...)...)
}
