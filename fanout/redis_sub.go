package fanout

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

const (
	// subBatchWindow is how long a shard's manager collects Subscribe and
	// Unsubscribe calls before sending them as one command: a burst of
	// 10,000 connecting users costs a handful of SUBSCRIBEs, not 10,000.
	subBatchWindow = 3 * time.Millisecond
	// subBatchMax caps the channels of one SUBSCRIBE/UNSUBSCRIBE command.
	subBatchMax = 4096
	// Reconnect backoff bounds (doubling, with jitter).
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// redisSub is one Redis pub/sub connection and the channels subscribed on
// it: a shard in shard mode, a partition in cluster mode.
//
// It uses a dedicated connection (Client.Dedicate + SetPubSubHooks) rather
// than Client.Receive: Receive ties a subscription to one blocking call per
// SUBSCRIBE and hides the confirmations, while a dedicated connection with
// hooks lets one manager goroutine add and remove thousands of channels
// incrementally in batches, observe each confirmation (so Subscribe returns
// only once Redis delivers), learn about disconnects from the hook error
// channel, and tear down exactly this connection when a probe fails.
// Hooks run on rueidis's reader goroutine, so they only enqueue: the
// handler runs on this shard's delivery goroutine.
type redisSub struct {
	b       *RedisBroker
	name    string
	client  rueidis.Client
	base    string // key base: prefix + partition tag
	chanPfx string // pub/sub channel name = chanPfx + channel
	probeCh string

	mu      sync.Mutex
	chans   map[string]*subChan
	dirty   map[string]struct{} // channels whose Redis subscription may need to change
	up      bool                // connected and every referenced channel subscribed
	down    bool                // the last connection attempt failed: Subscribe fails fast
	lastErr string
	active  int // channels subscribed in Redis

	kick     chan struct{} // cap 1: dirty changed
	broken   chan error    // cap 1: Redis dropped a subscription by itself
	retryNow chan struct{} // cap 1: skip the reconnect backoff (watchSentinelMasters)

	// While the pub/sub connection is down (downFlag), publishes fail fast
	// unless one succeeded within the last second (lastPubOK, Unix ns), except
	// one every failFastProbe (nextPubProbe) that tries Redis.
	downFlag     atomic.Bool
	lastPubOK    atomic.Int64
	nextPubProbe atomic.Int64
	firstAttempt chan struct{} // closed after the first connection attempt
	firstOnce    sync.Once

	// Subscription confirmations, updated by the OnSubscription hook.
	cmu      sync.Mutex
	awaiting map[string]struct{}
	awaitCh  chan struct{}
	unsubExp map[string]int

	queue   chan inbound
	dmu     sync.Mutex
	catchup map[string]struct{} // channels to re-read from their streams
	// catchupFails counts consecutive failed catch-up reads per channel.
	catchupFails map[string]int
	deliverKick  chan struct{}

	// dials counts the connections the shard's client opened; gen is the
	// Redis process (generation) a script last read on it.
	dials *atomic.Uint64
	gen   atomic.Pointer[redisGen]

	probeMu  sync.Mutex
	probeTok string
	probeOK  chan struct{}
	received atomic.Uint64
}

// failFastProbe is how often a publish to a shard whose pub/sub connection
// is down still tries Redis while the others fail at once.
const failFastProbe = 250 * time.Millisecond

// failFast reports whether a publish should fail without trying Redis: the
// shard's pub/sub connection is down and no publish succeeded within the
// last second. One publish per failFastProbe tries anyway (probe true: the
// caller reports a failure with probeFailed), so publishing resumes as soon
// as the shard answers. A healthy shard costs one atomic load.
func (s *redisSub) failFast() (fail, probe bool) {
	if !s.downFlag.Load() {
		return false, false
	}
	now := time.Now().UnixNano()
	if now-s.lastPubOK.Load() < int64(time.Second) {
		return false, false
	}
	next := s.nextPubProbe.Load()
	if now >= next && s.nextPubProbe.CompareAndSwap(next, now+int64(failFastProbe)) {
		return false, true
	}
	return true, false
}

// probeFailed starts the interval to the next probe publish when a probe
// failed (it may have waited the whole command timeout).
func (s *redisSub) probeFailed() {
	s.nextPubProbe.Store(time.Now().UnixNano() + int64(failFastProbe))
}

// publishOK records a successful publish. While the pub/sub connection is
// down, it keeps publishes flowing and cuts the reconnect backoff short:
// the shard answers again.
func (s *redisSub) publishOK() {
	if !s.downFlag.Load() {
		return
	}
	s.lastPubOK.Store(time.Now().UnixNano())
	select {
	case s.retryNow <- struct{}{}:
	default:
	}
}

// lastError returns the last connection error of a shard that is down.
func (s *redisSub) lastError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// redisGen is what a node knows of the Redis process serving a shard: its
// generation (run_id, plus "@<node id>" in a cluster) as read by a script,
// and the shard's dial count before that script ran.
type redisGen struct {
	id    string
	dials uint64
}

// belief returns the generation to pass to a script ("" when unknown or no
// longer trusted: a connection was opened since it was read, so the script
// reads it itself) and the current dial count, to hand to learn.
func (s *redisSub) belief() (string, uint64) {
	d := s.dials.Load()
	if g := s.gen.Load(); g != nil && g.dials == d {
		return g.id, d
	}
	return "", d
}

// learn records the generation a script read; dials is the count belief
// returned before the script ran, so a connection opened meanwhile makes
// the next belief unknown again.
func (s *redisSub) learn(id string, dials uint64) {
	if id != "" {
		s.gen.Store(&redisGen{id: id, dials: dials})
	}
}

// subChan is one channel's subscription on a node.
type subChan struct {
	refs   int
	active bool     // SUBSCRIBE confirmed on the current connection
	wait   *subWait // Subscribe calls waiting for the SUBSCRIBE confirmation
	last   Position // last position handed to the handler
}

type subWait struct {
	done chan struct{}
	err  error
}

func (b *RedisBroker) newSub(name string, c rueidis.Client, base string, dials *atomic.Uint64) *redisSub {
	return &redisSub{
		dials:        dials,
		b:            b,
		name:         name,
		client:       c,
		base:         base,
		chanPfx:      base + "chan:",
		probeCh:      base + "probe:" + b.nodeID,
		chans:        make(map[string]*subChan),
		dirty:        make(map[string]struct{}),
		lastErr:      "connecting",
		kick:         make(chan struct{}, 1),
		broken:       make(chan error, 1),
		retryNow:     make(chan struct{}, 1),
		firstAttempt: make(chan struct{}),
		unsubExp:     make(map[string]int),
		queue:        make(chan inbound, b.cfg.QueueSize),
		catchup:      make(map[string]struct{}),
		catchupFails: make(map[string]int),
		deliverKick:  make(chan struct{}, 1),
	}
}

// Subscribe implements Broker. It returns once every channel is subscribed
// in Redis, so a message published after it returns is delivered. It fails
// with ErrShardUnavailable for channels of a shard that is down; on any
// error no reference is kept.
func (b *RedisBroker) Subscribe(ctx context.Context, channels ...string) error {
	if b.closed() {
		return ErrClosed
	}
	for _, ch := range channels {
		if !ValidChannel(ch) {
			return fmt.Errorf("subscribe %q: %w", ch, ErrInvalidChannel)
		}
	}
	var waits []*subWait
	var names []string
	for i, ch := range channels {
		w, err := b.sub(ch).ref(ch)
		if err != nil {
			b.Unsubscribe(context.Background(), channels[:i]...)
			return fmt.Errorf("subscribe %s: %w", ch, err)
		}
		if w != nil {
			waits = append(waits, w)
			names = append(names, ch)
		}
	}
	for i, w := range waits {
		var err error
		select {
		case <-w.done:
			err = w.err
		case <-ctx.Done():
			err = ctx.Err()
		case <-b.ctx.Done():
			err = ErrClosed
		}
		if err != nil {
			b.Unsubscribe(context.Background(), channels...)
			return fmt.Errorf("subscribe %s: %w", names[i], err)
		}
	}
	return nil
}

// Unsubscribe implements Broker. The UNSUBSCRIBE is sent in the background
// with the next batch.
func (b *RedisBroker) Unsubscribe(_ context.Context, channels ...string) error {
	for _, ch := range channels {
		if ValidChannel(ch) {
			b.sub(ch).unref(ch)
		}
	}
	return nil
}

// ref adds a reference to channel and returns what to wait for when the
// channel is not yet subscribed in Redis.
func (s *redisSub) ref(channel string) (*subWait, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, fmt.Errorf("redis %s: %s: %w", s.name, s.lastErr, ErrShardUnavailable)
	}
	st := s.chans[channel]
	if st == nil {
		st = &subChan{}
		s.chans[channel] = st
	}
	st.refs++
	if st.active {
		return nil, nil
	}
	if st.wait == nil {
		st.wait = &subWait{done: make(chan struct{})}
	}
	s.markDirtyLocked(channel)
	return st.wait, nil
}

func (s *redisSub) unref(channel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.chans[channel]
	if st == nil || st.refs == 0 {
		return
	}
	if st.refs--; st.refs == 0 {
		s.markDirtyLocked(channel)
	}
}

func (s *redisSub) markDirtyLocked(channel string) {
	s.dirty[channel] = struct{}{}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *redisSub) health() ShardHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := ShardHealth{Addr: s.name, Healthy: s.up, Subscriptions: s.active}
	if !s.up {
		h.Err = s.lastErr
	}
	return h
}

// manage keeps the pub/sub connection up: it connects, serves batches and
// probes until the connection fails, then retries with backoff.
func (s *redisSub) manage() {
	defer s.b.wg.Done()
	backoff := minBackoff
	wasUp := false
	for {
		up, err := s.session(wasUp)
		if s.b.closed() {
			s.setDown(ErrClosed)
			s.firstOnce.Do(func() { close(s.firstAttempt) })
			return
		}
		s.setDown(err)
		s.firstOnce.Do(func() { close(s.firstAttempt) })
		if up {
			wasUp = true
			backoff = minBackoff
		}
		d := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, maxBackoff)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-s.retryNow: // the Sentinel master moved: try the new one now
			t.Stop()
			backoff = minBackoff
		case <-s.b.ctx.Done():
			t.Stop()
		}
	}
}

// setDown records a lost connection: nothing is subscribed in Redis any
// more and pending Subscribe calls fail. References stay, and the channels
// are subscribed again on the next connection.
func (s *redisSub) setDown(cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := fmt.Errorf("redis %s: %w: %w", s.name, ErrShardUnavailable, cause)
	if errors.Is(cause, ErrClosed) {
		err = ErrClosed
	}
	s.up = false
	s.down = true
	s.downFlag.Store(true)
	s.lastErr = cause.Error()
	s.active = 0
	for ch, st := range s.chans {
		st.active = false
		if st.wait != nil {
			st.wait.err = err
			close(st.wait.done)
			st.wait = nil
		}
		if st.refs == 0 {
			delete(s.chans, ch)
		}
	}
	clear(s.dirty)
}

func connErr(err error, ok bool) error {
	if !ok || err == nil {
		return errors.New("pub/sub connection closed")
	}
	return err
}

// session runs one pub/sub connection until it fails. up reports that it
// got as far as subscribing every channel.
func (s *redisSub) session(reconnect bool) (up bool, err error) {
	dc, _ := s.client.Dedicate()
	defer dc.Close()
	s.cmu.Lock()
	s.awaiting, s.awaitCh = nil, nil
	clear(s.unsubExp)
	s.cmu.Unlock()
	select {
	case <-s.broken:
	default:
	}
	errCh := dc.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: s.onMessage, OnSubscription: s.onSubscription})
	if err := s.subscribeRedis(dc, errCh, []string{s.probeCh}); err != nil {
		return false, err
	}
	s.mu.Lock()
	chans := make([]string, 0, len(s.chans))
	for ch, st := range s.chans {
		if st.refs > 0 {
			chans = append(chans, ch)
		}
	}
	clear(s.dirty)
	s.mu.Unlock()
	if err := s.subscribeChannels(dc, errCh, chans); err != nil {
		return false, err
	}
	s.mu.Lock()
	s.up, s.down, s.lastErr = true, false, ""
	s.downFlag.Store(false)
	s.mu.Unlock()
	s.firstOnce.Do(func() { close(s.firstAttempt) })
	if reconnect {
		s.b.stats.reconnects.Add(1)
		// Whatever was published while we were away is in the streams.
		s.dmu.Lock()
		clear(s.catchupFails)
		s.dmu.Unlock()
		s.requestCatchup(chans)
	}

	probe := time.NewTicker(s.b.cfg.ProbeInterval)
	defer probe.Stop()
	seen := s.received.Load()
	for {
		select {
		case <-s.b.ctx.Done():
			return true, ErrClosed
		case err, ok := <-errCh:
			return true, connErr(err, ok)
		case err := <-s.broken:
			return true, err
		case <-s.kick:
			t := time.NewTimer(subBatchWindow)
			select {
			case <-t.C:
			case <-s.b.ctx.Done():
				t.Stop()
				return true, ErrClosed
			}
			if err := s.flush(dc, errCh); err != nil {
				return true, err
			}
		case <-probe.C:
			if n := s.received.Load(); n != seen {
				seen = n // traffic proves the connection works
				continue
			}
			if err := s.probe(errCh); err != nil {
				if !s.b.closed() {
					s.b.stats.probeFailures.Add(1)
				}
				return true, err
			}
			seen = s.received.Load()
		}
	}
}

// flush sends the subscription changes collected since the last flush.
func (s *redisSub) flush(dc rueidis.DedicatedClient, errCh <-chan error) error {
	var subs, unsubs []string
	s.mu.Lock()
	for ch := range s.dirty {
		st := s.chans[ch]
		switch {
		case st == nil:
		case st.refs > 0 && !st.active:
			subs = append(subs, ch)
		case st.refs == 0 && st.active:
			unsubs = append(unsubs, ch)
			s.active--
			delete(s.chans, ch)
		case st.refs == 0:
			if st.wait != nil {
				st.wait.err = errors.New("unsubscribed before the subscription was active")
				close(st.wait.done)
			}
			delete(s.chans, ch)
		}
	}
	clear(s.dirty)
	s.mu.Unlock()
	for len(unsubs) > 0 {
		n := min(len(unsubs), subBatchMax)
		if err := s.unsubscribeRedis(dc, unsubs[:n]); err != nil {
			return err
		}
		unsubs = unsubs[n:]
	}
	return s.subscribeChannels(dc, errCh, subs)
}

// subscribeChannels subscribes channels in batches and releases the
// Subscribe calls waiting for each batch once Redis confirmed it.
func (s *redisSub) subscribeChannels(dc rueidis.DedicatedClient, errCh <-chan error, chans []string) error {
	names := make([]string, 0, min(len(chans), subBatchMax))
	for len(chans) > 0 {
		n := min(len(chans), subBatchMax)
		names = names[:0]
		for _, ch := range chans[:n] {
			names = append(names, s.chanPfx+ch)
		}
		if err := s.subscribeRedis(dc, errCh, names); err != nil {
			return err
		}
		s.mu.Lock()
		for _, ch := range chans[:n] {
			st := s.chans[ch]
			if st == nil {
				continue
			}
			if !st.active {
				st.active = true
				s.active++
			}
			if st.wait != nil {
				close(st.wait.done)
				st.wait = nil
			}
			if st.refs == 0 {
				s.markDirtyLocked(ch) // unsubscribed meanwhile
			}
		}
		s.mu.Unlock()
		chans = chans[n:]
	}
	return nil
}

// subscribeRedis sends one SUBSCRIBE (SSUBSCRIBE in cluster mode) and waits
// until Redis confirmed every channel of it.
func (s *redisSub) subscribeRedis(dc rueidis.DedicatedClient, errCh <-chan error, names []string) error {
	done := make(chan struct{})
	s.cmu.Lock()
	s.awaiting = make(map[string]struct{}, len(names))
	for _, n := range names {
		s.awaiting[n] = struct{}{}
	}
	s.awaitCh = done
	s.cmu.Unlock()
	var cmd rueidis.Completed
	if s.b.cluster {
		cmd = dc.B().Ssubscribe().Channel(names...).Build()
	} else {
		cmd = dc.B().Subscribe().Channel(names...).Build()
	}
	s.b.stats.subCmds.Add(1)
	ctx, cancel := context.WithTimeout(s.b.ctx, s.b.cfg.CommandTimeout)
	defer cancel()
	if err := dc.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("subscribe %d channels: %w", len(names), err)
	}
	select {
	case <-done:
		return nil
	case err, ok := <-errCh:
		return connErr(err, ok)
	case <-ctx.Done():
		return fmt.Errorf("subscribe %d channels: waiting for confirmations: %w", len(names), ctx.Err())
	}
}

// unsubscribeRedis sends one UNSUBSCRIBE (SUNSUBSCRIBE) for chans. The
// confirmations are only used to tell them from unsolicited ones.
func (s *redisSub) unsubscribeRedis(dc rueidis.DedicatedClient, chans []string) error {
	names := make([]string, len(chans))
	s.cmu.Lock()
	for i, ch := range chans {
		names[i] = s.chanPfx + ch
		s.unsubExp[names[i]]++
	}
	s.cmu.Unlock()
	var cmd rueidis.Completed
	if s.b.cluster {
		cmd = dc.B().Sunsubscribe().Channel(names...).Build()
	} else {
		cmd = dc.B().Unsubscribe().Channel(names...).Build()
	}
	s.b.stats.unsubCmds.Add(1)
	ctx, cancel := context.WithTimeout(s.b.ctx, s.b.cfg.CommandTimeout)
	defer cancel()
	if err := dc.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("unsubscribe %d channels: %w", len(names), err)
	}
	return nil
}

// probe publishes a token to this node's probe channel and waits for it to
// come back over the pub/sub connection.
func (s *redisSub) probe(errCh <-chan error) error {
	tok := strconv.FormatUint(rand.Uint64(), 36)
	ok := make(chan struct{})
	s.probeMu.Lock()
	s.probeTok, s.probeOK = tok, ok
	s.probeMu.Unlock()
	ctx, cancel := context.WithTimeout(s.b.ctx, s.b.cfg.CommandTimeout)
	defer cancel()
	var cmd rueidis.Completed
	if s.b.cluster {
		cmd = s.client.B().Spublish().Channel(s.probeCh).Message(tok).Build()
	} else {
		cmd = s.client.B().Publish().Channel(s.probeCh).Message(tok).Build()
	}
	if err := s.client.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("probe publish: %w", err)
	}
	select {
	case <-ok:
		return nil
	case err, ok := <-errCh:
		return connErr(err, ok)
	case <-ctx.Done():
		if s.b.closed() {
			return ErrClosed
		}
		return fmt.Errorf("probe not echoed within %s", s.b.cfg.CommandTimeout)
	}
}

// onMessage is the rueidis hook for pub/sub messages; it runs on the
// connection's reader and must not block.
func (s *redisSub) onMessage(m rueidis.PubSubMessage) {
	s.received.Add(1)
	if m.Channel == s.probeCh {
		s.probeMu.Lock()
		if s.probeOK != nil && m.Message == s.probeTok {
			close(s.probeOK)
			s.probeOK = nil
		}
		s.probeMu.Unlock()
		return
	}
	select {
	case s.queue <- inbound{m.Channel, m.Message}:
	default:
		// Full: the message stays in the stream; re-read the channel once
		// the queue has room.
		s.b.stats.dropped.Add(1)
		if ch, ok := strings.CutPrefix(m.Channel, s.chanPfx); ok {
			s.requestCatchup([]string{ch})
		}
	}
}

// onSubscription is the rueidis hook for subscription confirmations.
func (s *redisSub) onSubscription(p rueidis.PubSubSubscription) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	switch p.Kind {
	case "subscribe", "ssubscribe":
		if s.awaiting != nil {
			delete(s.awaiting, p.Channel)
			if len(s.awaiting) == 0 && s.awaitCh != nil {
				close(s.awaitCh)
				s.awaiting, s.awaitCh = nil, nil
			}
		}
	case "unsubscribe", "sunsubscribe":
		if n := s.unsubExp[p.Channel]; n > 0 {
			if n == 1 {
				delete(s.unsubExp, p.Channel)
			} else {
				s.unsubExp[p.Channel] = n - 1
			}
			return
		}
		// Redis dropped the subscription itself (a slot moved in a
		// cluster): rebuild the connection.
		select {
		case s.broken <- fmt.Errorf("redis %s: unsolicited %s of %s", s.name, p.Kind, p.Channel):
		default:
		}
	}
}
