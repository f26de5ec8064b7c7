package fanout

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// ShardHealth is the state of one Redis pub/sub connection: a shard, or a
// partition in cluster mode.
type ShardHealth struct {
	// Addr names the shard ("host:port") or the partition ("cluster:p3").
	Addr string
	// Healthy reports that the pub/sub connection is up and subscribed.
	Healthy bool
	// Err is the last connection or probe error while unhealthy.
	Err string
	// Subscriptions is the number of channels subscribed on it in Redis.
	Subscriptions int
}

// RedisStats are cumulative counters of a RedisBroker.
type RedisStats struct {
	// Dropped counts messages that arrived while a shard's inbound queue
	// was full. Each affected channel is re-read from its stream, so they
	// are delivered late, not lost, while the history retains them.
	Dropped uint64
	// Reconnects counts pub/sub connections re-established after a failure.
	Reconnects uint64
	// ProbeFailures counts probes that did not come back in time.
	ProbeFailures uint64
	// Recovered counts messages delivered from a stream read (after a
	// reconnect, a drop or a gap) rather than from pub/sub.
	Recovered uint64
	// SubscribeCommands counts SUBSCRIBE/SSUBSCRIBE commands sent.
	SubscribeCommands uint64
	// UnsubscribeCommands counts UNSUBSCRIBE/SUNSUBSCRIBE commands sent.
	UnsubscribeCommands uint64
}

type redisCounters struct {
	dropped, reconnects, probeFailures, recovered, subCmds, unsubCmds atomic.Uint64
}

// RedisBroker is a Broker for many Herald nodes sharing Redis. Each
// channel's history is a Redis stream next to a small meta hash (epoch,
// offset); a Lua script publishes atomically and fans the message out over
// Redis pub/sub to the nodes subscribed to the channel. Channels are spread
// over independent shards or, in cluster mode, over hash-tagged partitions
// of a Redis Cluster.
type RedisBroker struct {
	cfg     RedisConfig
	handler Handler
	cluster bool
	nodeID  string
	clients []rueidis.Client
	subs    []*redisSub

	publishScript *rueidis.Lua
	historyScript *rueidis.Lua
	connAcquire   *rueidis.Lua
	connRenew     *rueidis.Lua
	// Script arguments that never change, formatted once.
	argHistSize, argHistTTL, argMetaTTL, argIdemTTL, argSPublish string

	stats redisCounters

	ctx       context.Context // canceled by Close
	cancel    context.CancelFunc
	closeOnce sync.Once
	wg        sync.WaitGroup
}

var _ Broker = (*RedisBroker)(nil)
var _ HealthChecker = (*RedisBroker)(nil)

// ErrShardUnavailable is returned by Subscribe for channels of a Redis shard
// (or cluster partition) whose pub/sub connection is down.
var ErrShardUnavailable = errors.New("fanout: redis shard unavailable")

// NewRedis connects to Redis and returns a broker that delivers the
// messages of subscribed channels to h. It fails when the configuration is
// invalid, when no shard is reachable, or when the cluster cannot be
// reached; a subset of unreachable shards is reported by Healthy and
// retried in the background. ctx bounds the wait for the first connection
// attempt of every pub/sub connection.
func NewRedis(ctx context.Context, cfg RedisConfig, h Handler) (*RedisBroker, error) {
	cfg.applyDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	tlsConf, err := cfg.TLS.Build()
	if err != nil {
		return nil, fmt.Errorf("fanout: %w", err)
	}
	b := &RedisBroker{
		cfg:           cfg,
		handler:       h,
		cluster:       len(cfg.Cluster) > 0,
		nodeID:        strconv.FormatUint(rand.Uint64(), 36),
		publishScript: rueidis.NewLuaScript(redisPublishScript),
		// Reading history is idempotent (it at most creates a missing meta
		// hash), so it is retried over a fresh connection when a pooled one
		// turns out dead, e.g. right after a shard restart.
		historyScript: rueidis.NewLuaScriptRetryable(redisHistoryScript),
		connAcquire:   rueidis.NewLuaScript(connAcquireScript),
		connRenew:     rueidis.NewLuaScript(connRenewScript),
		argHistSize:   strconv.Itoa(cfg.HistorySize),
		argHistTTL:    strconv.FormatInt(cfg.HistoryTTL.Milliseconds(), 10),
		argMetaTTL:    strconv.FormatInt(cfg.MetaTTL.Milliseconds(), 10),
		argIdemTTL:    strconv.FormatInt(max(cfg.IdempotencyWindow.Milliseconds(), 1), 10),
		argSPublish:   "0",
	}
	opt := func(addrs []string) rueidis.ClientOption {
		return rueidis.ClientOption{
			InitAddress:  addrs,
			Username:     cfg.Username,
			Password:     cfg.Password,
			TLSConfig:    tlsConf,
			Dialer:       net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: time.Second},
			DisableCache: true,
			// Unacknowledged writes or unanswered PINGs for this long
			// mark a connection dead.
			ConnWriteTimeout: max(cfg.CommandTimeout, 3*time.Second),
			ClientName:       "herald",
		}
	}
	if b.cluster {
		b.argSPublish = "1"
		dials := new(atomic.Uint64)
		c, err := rueidis.NewClient(countDials(opt(cfg.Cluster), dials))
		if err != nil {
			return nil, fmt.Errorf("fanout: redis cluster %s: %w", strings.Join(cfg.Cluster, ","), err)
		}
		if c.Mode() != rueidis.ClientModeCluster {
			c.Close()
			return nil, fmt.Errorf("fanout: redis %s is not a cluster", strings.Join(cfg.Cluster, ","))
		}
		b.clients = []rueidis.Client{c}
		for p := 0; p < cfg.Partitions; p++ {
			b.subs = append(b.subs, b.newSub("cluster:p"+strconv.Itoa(p), c, cfg.Prefix+partitionTag(p), dials))
		}
	} else if err := b.connectShards(opt(nil), tlsConf); err != nil {
		return nil, err
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.watchSentinelMasters()
	for _, s := range b.subs {
		b.wg.Add(2)
		go s.manage()
		go s.deliverLoop()
	}
	for _, s := range b.subs {
		select {
		case <-s.firstAttempt:
		case <-ctx.Done():
			b.Close()
			return nil, fmt.Errorf("fanout: redis connect: %w", ctx.Err())
		}
	}
	return b, nil
}

func (b *RedisBroker) closeClients() {
	for _, c := range b.clients {
		c.Close()
	}
}

// sub returns the pub/sub connection (and key namespace) of channel.
func (b *RedisBroker) sub(channel string) *redisSub {
	return b.subs[ShardIndex(channel, len(b.subs))]
}

func (b *RedisBroker) closed() bool { return b.ctx.Err() != nil }

// Publish implements Broker. It runs the publish script on the channel's
// shard; publishes to channels of a shard that is down fail.
func (b *RedisBroker) Publish(ctx context.Context, channel string, data []byte, opts PublishOptions) (_ PublishResult, err error) {
	if b.closed() {
		return PublishResult{}, ErrClosed
	}
	if !ValidChannel(channel) {
		return PublishResult{}, fmt.Errorf("publish %q: %w", channel, ErrInvalidChannel)
	}
	s := b.sub(channel)
	fail, probe := s.failFast()
	if fail {
		return PublishResult{}, fmt.Errorf("publish %s on redis %s: %w: %s", channel, s.name, ErrShardUnavailable, s.lastError())
	}
	if probe {
		defer func() {
			if err != nil {
				s.probeFailed()
			}
		}()
	}
	k := newRedisKeys(s.base, channel)
	keys := make([]string, 2, 3)
	keys[0], keys[1] = k.meta, k.stream
	if opts.IdempotencyKey != "" {
		keys = append(keys, k.idem(channel, opts.IdempotencyKey))
	}
	histSize, histTTL := b.argHistSize, b.argHistTTL
	if size, ttl := b.cfg.Retention.of(channel, b.cfg.HistorySize, b.cfg.HistoryTTL); size != b.cfg.HistorySize || ttl != b.cfg.HistoryTTL {
		histSize = strconv.Itoa(size)
		histTTL = strconv.FormatInt(ttl.Milliseconds(), 10)
	}
	gen, dials := s.belief()
	args := []string{k.pubsub, rueidis.BinaryString(data), opts.TraceParent, strconv.FormatInt(time.Now().UnixNano(), 10),
		histSize, histTTL, b.argMetaTTL, b.argIdemTTL, b.argSPublish, gen}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.CommandTimeout)
	defer cancel()
	vals, err := b.publishScript.Exec(ctx, s.client, keys, args).ToArray()
	if err != nil {
		if _, isRedisErr := rueidis.IsRedisErr(err); !isRedisErr {
			// Not an answer from Redis: the shard is unreachable or too slow.
			err = fmt.Errorf("%w: %w", ErrShardUnavailable, err)
		}
		return PublishResult{}, fmt.Errorf("publish %s on redis %s: %w", channel, s.name, err)
	}
	if len(vals) != 4 {
		return PublishResult{}, fmt.Errorf("publish %s on redis %s: unexpected script reply of %d values", channel, s.name, len(vals))
	}
	epoch, err1 := vals[0].AsInt64()
	off, err2 := vals[1].AsInt64()
	dup, err3 := vals[2].AsInt64()
	read, err4 := vals[3].ToString()
	if err := errors.Join(err1, err2, err3, err4); err != nil || epoch <= 0 || epoch > 1<<32-1 || off <= 0 {
		return PublishResult{}, fmt.Errorf("publish %s on redis %s: bad script reply: %v", channel, s.name, err)
	}
	if read != "" {
		s.learn(read, dials)
	} else if dup == 0 && s.dials.Load() != dials {
		// The script trusted gen, but the command may have travelled on a
		// connection made after gen was read, to another Redis process.
		if err := b.recheck(ctx, s, channel, gen); err != nil {
			return PublishResult{}, fmt.Errorf("publish %s on redis %s: %w", channel, s.name, err)
		}
	}
	s.publishOK()
	return PublishResult{Pos: Position{Epoch: uint32(epoch), Offset: uint64(off)}, Duplicate: dup == 1}, nil
}

// ErrShardChanged is wrapped (with ErrShardUnavailable) by a publish error
// when the shard's Redis process changed while the publish ran, so it may
// have been stored in a history that ended: the publish should be retried.
var ErrShardChanged = errors.New("fanout: redis process changed during the publish")

// recheck reads channel's meta with a fresh generation (which starts a new
// epoch if the meta hash belongs to another Redis process) and fails when
// the shard's process is no longer gen.
func (b *RedisBroker) recheck(ctx context.Context, s *redisSub, channel, gen string) error {
	dials := s.dials.Load()
	_, _, read, err := b.runHistory(ctx, s, channel, 0, 0, "")
	if err != nil {
		return fmt.Errorf("checking the redis process: %w", err)
	}
	s.learn(read, dials)
	if read != gen {
		return fmt.Errorf("%w (%w)", ErrShardChanged, ErrShardUnavailable)
	}
	return nil
}

// readStream runs the history script: the channel's current epoch and top,
// and up to limit stream messages from offset first on (none when first is
// 0).
func (b *RedisBroker) readStream(ctx context.Context, s *redisSub, channel string, first uint64, limit int) (Position, []*Message, error) {
	gen, dials := s.belief()
	pos, msgs, read, err := b.runHistory(ctx, s, channel, first, limit, gen)
	if err == nil && read == "" && s.dials.Load() != dials {
		// Possibly answered by another Redis process than gen's: read again,
		// letting the script check the process.
		dials = s.dials.Load()
		pos, msgs, read, err = b.runHistory(ctx, s, channel, first, limit, "")
	}
	if err != nil {
		return pos, nil, err
	}
	s.learn(read, dials)
	return pos, msgs, nil
}

// runHistory runs the history script once with the generation gen ("":
// let the script read it) and returns what it read ("" when it trusted
// gen).
func (b *RedisBroker) runHistory(ctx context.Context, s *redisSub, channel string, first uint64, limit int, gen string) (Position, []*Message, string, error) {
	k := newRedisKeys(s.base, channel)
	ctx, cancel := context.WithTimeout(ctx, b.cfg.CommandTimeout)
	defer cancel()
	vals, err := b.historyScript.Exec(ctx, s.client, []string{k.meta, k.stream},
		[]string{strconv.FormatUint(first, 10), strconv.Itoa(max(limit, 0)), b.argMetaTTL, gen, b.argSPublish}).ToArray()
	if err != nil {
		return Position{}, nil, "", fmt.Errorf("history %s on redis %s: %w", channel, s.name, err)
	}
	if len(vals) != 4 {
		return Position{}, nil, "", fmt.Errorf("history %s on redis %s: unexpected script reply of %d values", channel, s.name, len(vals))
	}
	epoch, err1 := vals[0].AsInt64()
	top, err2 := vals[1].AsInt64()
	entries, err3 := vals[2].ToArray()
	read, err4 := vals[3].ToString()
	if err := errors.Join(err1, err2, err3, err4); err != nil || epoch <= 0 || epoch > 1<<32-1 || top < 0 {
		return Position{}, nil, "", fmt.Errorf("history %s on redis %s: bad script reply: %v", channel, s.name, err)
	}
	pos := Position{Epoch: uint32(epoch), Offset: uint64(top)}
	msgs := make([]*Message, 0, len(entries))
	for i := range entries {
		m, err := parseStreamEntry(channel, pos.Epoch, &entries[i])
		if err != nil {
			return pos, nil, "", fmt.Errorf("history %s on redis %s: %w", channel, s.name, err)
		}
		msgs = append(msgs, m)
	}
	return pos, msgs, read, nil
}

// parseStreamEntry decodes one XRANGE entry [id, [field, value, ...]].
func parseStreamEntry(channel string, epoch uint32, e *rueidis.RedisMessage) (*Message, error) {
	parts, err := e.ToArray()
	if err != nil || len(parts) != 2 {
		return nil, fmt.Errorf("bad stream entry: %v", err)
	}
	id, err := parts[0].ToString()
	if err != nil {
		return nil, fmt.Errorf("bad stream entry id: %w", err)
	}
	off, ok := streamOffset(id)
	if !ok {
		return nil, fmt.Errorf("bad stream entry id %q", id)
	}
	fv, err := parts[1].ToArray()
	if err != nil {
		return nil, fmt.Errorf("bad stream entry %s: %w", id, err)
	}
	m := &Message{Channel: channel, Pos: Position{Epoch: epoch, Offset: off}}
	for i := 0; i+1 < len(fv); i += 2 {
		f, _ := fv[i].ToString()
		v, _ := fv[i+1].ToString()
		switch f {
		case "d":
			m.Data = []byte(v)
		case "t":
			m.PublishedAt, _ = strconv.ParseInt(v, 10, 64)
		case "p":
			m.TraceParent = v
		}
	}
	if m.Data == nil {
		m.Data = []byte{}
	}
	return m, nil
}

// historyTTL is channel's history TTL.
func (b *RedisBroker) historyTTL(channel string) time.Duration {
	_, ttl := b.cfg.Retention.of(channel, b.cfg.HistorySize, b.cfg.HistoryTTL)
	return ttl
}

// History implements Broker. Messages older than HistoryTTL count as no
// longer retained.
func (b *RedisBroker) History(ctx context.Context, channel string, since Position, limit int) (HistoryResult, error) {
	if b.closed() {
		return HistoryResult{}, ErrClosed
	}
	if !ValidChannel(channel) {
		return HistoryResult{}, fmt.Errorf("history %q: %w", channel, ErrInvalidChannel)
	}
	var first uint64
	if since.Epoch != 0 {
		first = since.Offset + 1
	}
	top, msgs, err := b.readStream(ctx, b.sub(channel), channel, first, limit)
	if err != nil {
		return HistoryResult{}, err
	}
	res := HistoryResult{Top: top}
	switch {
	case since.Epoch == 0:
		return res, nil
	case since.Epoch != top.Epoch:
		return res, fmt.Errorf("history %s since %s: %w: %w", channel, since, ErrHistoryGone, ErrEpochChanged)
	case since.Offset > top.Offset:
		return res, fmt.Errorf("history %s since %s is ahead of top %d: %w", channel, since, top.Offset, ErrHistoryGone)
	case since.Offset == top.Offset:
		return res, nil
	}
	if len(msgs) == 0 || msgs[0].Pos.Offset != since.Offset+1 {
		return res, fmt.Errorf("history %s since %s: no longer retained in redis: %w", channel, since, ErrHistoryGone)
	}
	if cut := time.Now().Add(-b.historyTTL(channel)).UnixNano(); msgs[0].PublishedAt != 0 && msgs[0].PublishedAt < cut {
		return res, fmt.Errorf("history %s since %s: older than the history ttl: %w", channel, since, ErrHistoryGone)
	}
	// Entries beyond top (published after the read started) cannot exist:
	// the script reads both atomically.
	res.Messages = msgs
	return res, nil
}

// ShardHealth reports the state of every pub/sub connection, for /readyz.
func (b *RedisBroker) ShardHealth() []ShardHealth {
	out := make([]ShardHealth, 0, len(b.subs))
	for _, s := range b.subs {
		out = append(out, s.health())
	}
	return out
}

// Healthy implements HealthChecker: it fails, naming them, while any shard
// (or cluster partition) is down.
func (b *RedisBroker) Healthy(context.Context) error {
	if b.closed() {
		return ErrClosed
	}
	var down []string
	for _, h := range b.ShardHealth() {
		if !h.Healthy {
			down = append(down, fmt.Sprintf("%s (%s)", h.Addr, h.Err))
		}
	}
	if len(down) > 0 {
		return fmt.Errorf("fanout: redis down: %s: %w", strings.Join(down, ", "), ErrShardUnavailable)
	}
	return nil
}

// Subscriptions returns the number of channels this node is currently
// subscribed to in Redis, over all shards.
func (b *RedisBroker) Subscriptions() int {
	n := 0
	for _, s := range b.subs {
		n += s.health().Subscriptions
	}
	return n
}

// Subscribers returns the subscription reference count of channel (for
// tests and metrics).
func (b *RedisBroker) Subscribers(channel string) int {
	s := b.sub(channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.chans[channel]; st != nil {
		return st.refs
	}
	return 0
}

// Stats returns the broker's counters.
func (b *RedisBroker) Stats() RedisStats {
	return RedisStats{
		Dropped:             b.stats.dropped.Load(),
		Reconnects:          b.stats.reconnects.Load(),
		ProbeFailures:       b.stats.probeFailures.Load(),
		Recovered:           b.stats.recovered.Load(),
		SubscribeCommands:   b.stats.subCmds.Load(),
		UnsubscribeCommands: b.stats.unsubCmds.Load(),
	}
}

// Close implements Broker. Pending Subscribe calls fail with ErrClosed.
func (b *RedisBroker) Close() error {
	b.closeOnce.Do(func() {
		b.cancel()
		b.wg.Wait()
		b.closeClients()
	})
	return nil
}
