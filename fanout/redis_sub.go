package fanout

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// redisSub is one Redis pub/sub connection and the channels subscribed on
// it: a shard in shard mode, a partition in cluster mode.
//
// It uses a dedicated connection (redissub.Conn: Client.Dedicate +
// SetPubSubHooks) rather than Client.Receive: Receive ties a subscription
// to one blocking call per SUBSCRIBE and hides the confirmations, while a
// dedicated connection with hooks lets one manager goroutine add and
// remove thousands of channels incrementally in batches, observe each
// confirmation (so Subscribe returns only once Redis delivers), learn
// about disconnects from the hook error channel, and tear down exactly
// this connection when a probe fails.
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
	broken   chan error    // cap 1: the connection must be rebuilt (the Sentinel master moved)
	retryNow chan struct{} // cap 1: skip the reconnect backoff (watchSentinelMasters)

	// While the pub/sub connection is down (downFlag), publishes fail fast
	// unless one succeeded within the last second (lastPubOK, Unix ns), except
	// one every failFastProbe (nextPubProbe) that tries Redis.
	downFlag     atomic.Bool
	lastPubOK    atomic.Int64
	nextPubProbe atomic.Int64
	firstAttempt chan struct{} // closed after the first connection attempt
	firstOnce    sync.Once

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
