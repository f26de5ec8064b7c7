package fanout

import (
	"context"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// MemoryConfig configures the in-memory broker. Zero values mean the
// documented defaults.
type MemoryConfig struct {
	// HistorySize is how many messages each channel retains for resume
	// (default 100).
	HistorySize int
	// HistoryTTL is how long a retained message stays resumable (default
	// 10m).
	HistoryTTL time.Duration
	// IdempotencyWindow is how long an idempotency key is remembered
	// (default 5m).
	IdempotencyWindow time.Duration
	// Retention, when set, gives per-channel size and TTL (e.g. from
	// history.retention rules); zero values fall back to the above.
	Retention Retention
}

// retention returns channel's history size and TTL.
func (c *MemoryConfig) retention(channel string) (int, time.Duration) {
	return c.Retention.of(channel, c.HistorySize, c.HistoryTTL)
}

func (c *MemoryConfig) applyDefaults() {
	if c.HistorySize <= 0 {
		c.HistorySize = DefaultHistorySize
	}
	if c.HistoryTTL <= 0 {
		c.HistoryTTL = DefaultHistoryTTL
	}
	if c.IdempotencyWindow <= 0 {
		c.IdempotencyWindow = DefaultIdempotencyWindow
	}
}

// memShards spreads channels over independently locked maps so publishes to
// different channels do not contend; 64 is plenty for 2–64 cores.
const memShards = 64

// MemoryBroker is a Broker for a single Herald node. Its history lives in
// process memory and is lost on restart (clients then get a new epoch and a
// stream_reset).
type MemoryBroker struct {
	cfg     MemoryConfig
	handler Handler
	seed    maphash.Seed
	shards  [memShards]memShard
	now     func() time.Time

	// deliverers hand published messages to the handler off the publish
	// path; channel c is always served by the same one, so each channel's
	// messages keep their order.
	deliverers [memDeliverers]memDeliverer
	// undelivered counts channels waiting for or in delivery (tests wait
	// for it to reach zero).
	undelivered atomic.Int64

	closeOnce sync.Once
	done      chan struct{}
	wg        sync.WaitGroup
}

// memDeliverers is how many delivery goroutines a memory broker runs. A
// few keep one huge broadcast from delaying every other channel; more buy
// nothing, since the handler only enqueues.
const memDeliverers = 4

// memDeliverBatch bounds how many messages of one channel are handed over
// before the next waiting channel gets its turn.
const memDeliverBatch = 256

// memDeliverer is one delivery goroutine's work list: the channels with
// messages published but not yet handed to the handler. A channel is on
// the list at most once (memChannel.pending), so the list is bounded by
// the number of channels and a burst costs no memory beyond the history
// that already holds its messages.
type memDeliverer struct {
	mu    sync.Mutex
	dirty []*memChannel
	kick  chan struct{} // cap 1: dirty became non-empty
}

var _ Broker = (*MemoryBroker)(nil)
var _ HealthChecker = (*MemoryBroker)(nil)

type memShard struct {
	mu       sync.Mutex
	channels map[string]*memChannel
}

type memChannel struct {
	mu    sync.Mutex
	epoch uint32
	top   uint64
	// ring holds the retained messages, oldest first, at most HistorySize.
	ring     []*Message
	subs     int
	idem     map[string]idemEntry
	lastUsed time.Time
	// dead is set, under mu, when sweep removes the channel from its shard.
	// A caller that looked the channel up before and locks it after must
	// not use it: its subscription or message would be lost with it.
	dead bool
	size int           // retained messages (history.size or a retention rule)
	ttl  time.Duration // how long a message stays resumable

	// delivered is the last offset handed to the handler (or skipped
	// because nobody here was subscribed when it was published).
	delivered uint64
	// pending is set while the channel is on its deliverer's list.
	pending bool
	dl      *memDeliverer
}

type idemEntry struct {
	pos     Position
	expires time.Time
}

// NewMemory returns an in-memory broker that delivers the messages of
// subscribed channels to h.
func NewMemory(cfg MemoryConfig, h Handler) *MemoryBroker {
	cfg.applyDefaults()
	b := &MemoryBroker{cfg: cfg, handler: h, seed: maphash.MakeSeed(), now: time.Now, done: make(chan struct{})}
	for i := range b.shards {
		b.shards[i].channels = make(map[string]*memChannel)
	}
	b.wg.Add(1 + memDeliverers)
	go b.sweepLoop()
	for i := range b.deliverers {
		d := &b.deliverers[i]
		d.kick = make(chan struct{}, 1)
		go b.deliverLoop(d)
	}
	return b
}

func newEpoch() uint32 {
	for {
		if e := rand.Uint32(); e != 0 {
			return e
		}
	}
}

func (b *MemoryBroker) closed() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// channel returns the state of name, creating it when create is set.
func (b *MemoryBroker) channel(name string, create bool) *memChannel {
	i := maphash.String(b.seed, name) % memShards
	s := &b.shards[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.channels[name]
	if c == nil && create {
		c = &memChannel{epoch: newEpoch(), lastUsed: b.now(), dl: &b.deliverers[i%memDeliverers]}
		c.size, c.ttl = b.cfg.retention(name)
		s.channels[name] = c
	}
	return c
}

// lockChannel returns the state of name locked, creating it when create
// is set; nil when it does not exist and create is not set.
func (b *MemoryBroker) lockChannel(name string, create bool) *memChannel {
	for {
		c := b.channel(name, create)
		if c == nil {
			return nil
		}
		c.mu.Lock()
		if !c.dead {
			return c
		}
		c.mu.Unlock() // swept in between: look it up again
	}
}

// Publish implements Broker.
func (b *MemoryBroker) Publish(_ context.Context, channel string, data []byte, opts PublishOptions) (PublishResult, error) {
	if b.closed() {
		return PublishResult{}, ErrClosed
	}
	if !ValidChannel(channel) {
		return PublishResult{}, fmt.Errorf("publish %q: %w", channel, ErrInvalidChannel)
	}
	now := b.now()
	c := b.lockChannel(channel, true)
	defer c.mu.Unlock()
	if opts.IdempotencyKey != "" {
		if e, ok := c.idem[opts.IdempotencyKey]; ok && now.Before(e.expires) {
			return PublishResult{Pos: e.pos, Duplicate: true}, nil
		}
	}
	c.top++
	m := &Message{
		Channel:     channel,
		Pos:         Position{Epoch: c.epoch, Offset: c.top},
		Data:        data,
		TraceParent: opts.TraceParent,
		PublishedAt: now.UnixNano(),
	}
	if len(c.ring) >= c.size {
		copy(c.ring, c.ring[1:])
		c.ring[len(c.ring)-1] = m
	} else {
		c.ring = append(c.ring, m)
	}
	c.lastUsed = now
	if opts.IdempotencyKey != "" {
		if c.idem == nil {
			c.idem = make(map[string]idemEntry)
		}
		c.idem[opts.IdempotencyKey] = idemEntry{pos: m.Pos, expires: now.Add(b.cfg.IdempotencyWindow)}
	}
	// The message is in the history now; delivery happens on the
	// channel's deliverer, so the caller never waits for the fan-out.
	if c.subs == 0 || b.handler == nil {
		if !c.pending {
			c.delivered = c.top // nobody here to deliver to
		}
	} else if !c.pending {
		c.pending = true
		b.undelivered.Add(1)
		d := c.dl
		d.mu.Lock()
		d.dirty = append(d.dirty, c)
		d.mu.Unlock()
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
	return PublishResult{Pos: m.Pos}, nil
}

// deliverLoop hands the messages of d's channels to the handler, oldest
// first per channel, reading them from the history ring: what is queued
// is a channel, never a copy of a message. When a channel's publishers
// outrun delivery by more than its history size, the oldest undelivered
// messages leave the ring before they are delivered; the next delivered
// message then skips offsets and each session reads the gap from
// History (or is sent a stream_reset if it is gone), as after any gap.
func (b *MemoryBroker) deliverLoop(d *memDeliverer) {
	defer b.wg.Done()
	var work []*memChannel
	batch := make([]*Message, 0, memDeliverBatch)
	for {
		select {
		case <-b.done:
			return
		case <-d.kick:
		}
		for {
			d.mu.Lock()
			work, d.dirty = d.dirty, work[:0]
			d.mu.Unlock()
			if len(work) == 0 {
				break
			}
			for i, c := range work {
				work[i] = nil
				if b.closed() {
					return
				}
				var finished bool
				batch, finished = b.takeBatch(c, batch[:0])
				for j, m := range batch {
					b.handler(m)
					batch[j] = nil
				}
				if finished {
					b.undelivered.Add(-1)
				}
			}
		}
	}
}

// takeBatch appends to batch up to memDeliverBatch undelivered messages of
// c and marks them delivered. If more remain, c goes back on its
// deliverer's list behind the channels already waiting; otherwise finished
// reports that c left the list.
func (b *MemoryBroker) takeBatch(c *memChannel, batch []*Message) (_ []*Message, finished bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subs > 0 && c.delivered < c.top && len(c.ring) > 0 {
		oldest := c.top - uint64(len(c.ring)) + 1
		from := max(c.delivered+1, oldest)
		msgs := c.ring[from-oldest:]
		if len(msgs) > memDeliverBatch {
			msgs = msgs[:memDeliverBatch]
		}
		batch = append(batch, msgs...)
		c.delivered = from + uint64(len(msgs)) - 1
	}
	if c.subs == 0 || len(c.ring) == 0 {
		c.delivered = c.top
	}
	if c.delivered < c.top {
		d := c.dl
		d.mu.Lock()
		d.dirty = append(d.dirty, c)
		d.mu.Unlock()
		return batch, false
	}
	c.pending = false
	return batch, true
}

// settle waits until every message published so far has been handed to
// the handler (for tests).
func (b *MemoryBroker) settle() {
	for b.undelivered.Load() > 0 && !b.closed() {
		time.Sleep(time.Millisecond)
	}
}

// Subscribe implements Broker.
func (b *MemoryBroker) Subscribe(_ context.Context, channels ...string) error {
	if b.closed() {
		return ErrClosed
	}
	for _, ch := range channels {
		if !ValidChannel(ch) {
			return fmt.Errorf("subscribe %q: %w", ch, ErrInvalidChannel)
		}
	}
	for _, ch := range channels {
		c := b.lockChannel(ch, true)
		c.subs++
		c.lastUsed = b.now()
		c.mu.Unlock()
	}
	return nil
}

// Unsubscribe implements Broker.
func (b *MemoryBroker) Unsubscribe(_ context.Context, channels ...string) error {
	for _, ch := range channels {
		c := b.lockChannel(ch, false)
		if c == nil {
			continue
		}
		if c.subs > 0 {
			c.subs--
		}
		c.lastUsed = b.now()
		c.mu.Unlock()
	}
	return nil
}

// Subscribers returns the subscription reference count of channel (for
// tests and metrics).
func (b *MemoryBroker) Subscribers(channel string) int {
	c := b.lockChannel(channel, false)
	if c == nil {
		return 0
	}
	defer c.mu.Unlock()
	return c.subs
}

// History implements Broker.
func (b *MemoryBroker) History(_ context.Context, channel string, since Position, limit int) (HistoryResult, error) {
	if b.closed() {
		return HistoryResult{}, ErrClosed
	}
	if !ValidChannel(channel) {
		return HistoryResult{}, fmt.Errorf("history %q: %w", channel, ErrInvalidChannel)
	}
	c := b.lockChannel(channel, true)
	defer c.mu.Unlock()
	b.expireLocked(c, b.now())
	res := HistoryResult{Top: Position{Epoch: c.epoch, Offset: c.top}}
	if since.Epoch == 0 {
		return res, nil
	}
	if since.Epoch != c.epoch {
		return res, fmt.Errorf("history %s since %s: %w: %w", channel, since, ErrHistoryGone, ErrEpochChanged)
	}
	if since.Offset > c.top {
		return res, fmt.Errorf("history %s since %s is ahead of top %d: %w", channel, since, c.top, ErrHistoryGone)
	}
	oldest := c.top - uint64(len(c.ring)) + 1 // first retained offset
	if since.Offset+1 < oldest {
		return res, fmt.Errorf("history %s since %s: oldest retained is %d: %w", channel, since, oldest, ErrHistoryGone)
	}
	start := int(since.Offset + 1 - oldest)
	msgs := c.ring[start:]
	if limit > 0 && len(msgs) > limit {
		msgs = msgs[:limit]
	}
	res.Messages = append([]*Message(nil), msgs...)
	return res, nil
}

// expireLocked drops messages older than the history TTL.
func (b *MemoryBroker) expireLocked(c *memChannel, now time.Time) {
	cut := now.Add(-c.ttl).UnixNano()
	n := 0
	for n < len(c.ring) && c.ring[n].PublishedAt < cut {
		n++
	}
	if n > 0 {
		clear(c.ring[:n])
		c.ring = append(c.ring[:0], c.ring[n:]...)
	}
}

// sweepInterval bounds how long expired messages and idempotency keys linger
// in memory after their TTL.
const sweepInterval = 30 * time.Second

func (b *MemoryBroker) sweepLoop() {
	defer b.wg.Done()
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
			b.sweep(b.now())
		}
	}
}

// sweep expires history and idempotency keys, and forgets channels that have
// neither messages nor subscribers and were idle for a whole history TTL.
// A forgotten channel gets a new epoch if it is used again, so an old cursor
// for it yields a stream_reset rather than a silent gap.
func (b *MemoryBroker) sweep(now time.Time) {
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		for name, c := range s.channels {
			c.mu.Lock()
			b.expireLocked(c, now)
			for k, e := range c.idem {
				if !now.Before(e.expires) {
					delete(c.idem, k)
				}
			}
			if len(c.ring) == 0 && c.subs == 0 && len(c.idem) == 0 && now.Sub(c.lastUsed) > c.ttl {
				c.dead = true
				delete(s.channels, name)
			}
			c.mu.Unlock()
		}
		s.mu.Unlock()
	}
}

// Healthy implements HealthChecker.
func (b *MemoryBroker) Healthy(context.Context) error {
	if b.closed() {
		return ErrClosed
	}
	return nil
}

// Close implements Broker.
func (b *MemoryBroker) Close() error {
	b.closeOnce.Do(func() { close(b.done) })
	b.wg.Wait()
	return nil
}
