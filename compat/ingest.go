// Package compat lets applications written for Django Channels move to
// Herald without changing the code that sends notifications.
//
// Ingest reads what channels_redis carries for channel_layer.group_send —
// through the default RedisChannelLayer (channels_redis.core) or the
// RedisPubSubChannelLayer (channels_redis.pubsub) — decodes the msgpack
// events, and publishes event["message"], re-encoded as JSON with its key
// order kept, to the Herald channel the group maps to (group user_42 →
// channel user:42). The wire format and the multi-node rules are described
// in docs/migrating-from-django-channels.md.
package compat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldrt/herald/fanout"
)

// PublishFunc publishes one message to a Herald channel; a node passes its
// broker's Publish method (fanout.Broker.Publish has this signature).
type PublishFunc func(ctx context.Context, channel string, data []byte, opts fanout.PublishOptions) (fanout.PublishResult, error)

// TopFunc returns the newest position of a Herald channel; a node passes
// a function around its broker's History (fanout.Broker.History with a
// zero position).
type TopFunc func(ctx context.Context, channel string) (fanout.Position, error)

// Option adjusts an Ingest.
type Option func(*Ingest)

// WithTop gives the pubsub layer the broker's channel tops, which it reads
// before subscribing to a group. With it, an idempotency key that an
// earlier identical message left in the broker (before this node
// subscribed: a node restart) is not mistaken for a copy of a new message
// received by another node, so the new message is delivered.
func WithTop(top TopFunc) Option { return func(in *Ingest) { in.top = top } }

// Stats are the ingest's counters since it started.
type Stats struct {
	// Received counts messages read from Redis.
	Received uint64
	// Published counts publishes that created a new message.
	Published uint64
	// Duplicates counts publishes the broker recognised as repeats (the
	// same message ingested by another node).
	Duplicates uint64
	// Malformed counts messages that could not be decoded or encoded.
	Malformed uint64
	// InvalidUTF8 counts the malformed messages dropped because a string
	// in them is not valid UTF-8 (also counted in Malformed).
	InvalidUTF8 uint64
	// Skipped counts events ignored by the types filter, without the
	// message key, or for groups no rule maps.
	Skipped uint64
	// Expired counts core messages older than expiry when read.
	Expired uint64
	// PublishErrors counts failed publish attempts (retried).
	PublishErrors uint64
	// Dropped counts messages given up on: still unpublished at expiry, or
	// a full pubsub queue.
	Dropped uint64
	// Groups is the number of groups currently joined or subscribed.
	Groups int
	// Leading is the number of hosts whose inbox this node reads (core).
	Leading int
	// Restored counts the times a host was found to have lost this node's
	// group memberships (restart, flush, failover) and they were written
	// again (core).
	Restored uint64
}

type counters struct {
	received, published, duplicates, malformed, skipped atomic.Uint64
	invalidUTF8                                         atomic.Uint64
	expired, publishErrors, dropped, restored           atomic.Uint64
	leading                                             atomic.Int64
}

// groupState is one group some local subscriber needs.
type groupState struct {
	refs   int
	idle   time.Time // when refs dropped to 0
	joined bool      // membership or subscription applied
}

// layer is the layer-specific half of an Ingest.
type layer interface {
	// apply joins and leaves groups; it returns the groups it could not
	// join (retried later).
	apply(ctx context.Context, join, leave []string) (failed []string)
	// refresh renews the membership of joined groups (core).
	refresh(ctx context.Context, groups []string)
	// verify checks, about once a second, that Redis still holds what
	// apply wrote (a restart without persistence, a flush or a failover
	// loses it) and rewrites it where it is gone (core).
	verify(ctx context.Context, groups []string)
	// settled reports whether Redis reflects every applied change.
	settled() bool
	// run starts the layer's readers.
	run()
}

// Ingest receives channels_redis group messages and publishes them to
// Herald channels. Create it with NewIngest; the edge calls Interest and
// Release as local subscriptions come and go.
type Ingest struct {
	cfg     Config
	rules   []rule
	style   Style
	types   atomic.Pointer[map[string]bool] // nil map: every type; swapped by SetTypes
	publish PublishFunc
	top     TopFunc // nil: no floor (see WithTop)
	log     *slog.Logger
	node    string

	clients []rueidis.Client
	layer   layer

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	groups map[string]*groupState
	dirty  bool // interest changed since the manager last looked
	busy   bool // the manager is applying changes
	kick   chan struct{}

	stats     counters
	limiter   logLimiter
	closeOnce sync.Once
}

// NewIngest connects to the configured Redis hosts and starts reading.
// publish is called for every message, in order per group; log receives
// one line per problem (rate limited).
func NewIngest(cfg Config, publish PublishFunc, log *slog.Logger, opts ...Option) (*Ingest, error) {
	cfg.Enabled = true
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rs, err := cfg.Rules()
	if err != nil {
		return nil, fmt.Errorf("compat.channels_redis.groups: %w", err)
	}
	rules, err := compileRules(rs)
	if err != nil {
		return nil, fmt.Errorf("compat.channels_redis.groups: %w", err)
	}
	var nb [6]byte
	_, _ = rand.Read(nb[:])
	ctx, cancel := context.WithCancel(context.Background())
	in := &Ingest{
		cfg: cfg, rules: rules, publish: publish, log: log,
		node:   hex.EncodeToString(nb[:]),
		ctx:    ctx,
		cancel: cancel,
		groups: make(map[string]*groupState),
		kick:   make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(in)
	}
	if cfg.JSONStyle == "compact" {
		in.style = StyleCompact
	}
	in.SetTypes(cfg.Types)
	for i, h := range cfg.Hosts {
		opt, err := clientOption(h, cfg)
		if err != nil {
			in.closeClients()
			cancel()
			return nil, fmt.Errorf("compat.channels_redis.hosts[%d]: %w", i, err)
		}
		c, err := rueidis.NewClient(opt)
		if err != nil {
			in.closeClients()
			cancel()
			if opt.TLSConfig != nil && len(opt.InitAddress) == 1 {
				// Name a refused certificate rather than the reset it causes.
				if terr := fanout.CheckRedisTLS(opt.InitAddress[0], opt.TLSConfig, opt.Dialer, time.Second); terr != nil {
					err = fmt.Errorf("%w (check compat.channels_redis.tls)", terr)
				}
			}
			return nil, fmt.Errorf("compat.channels_redis.hosts[%d] (%s): connect: %w", i, redactHost(h), err)
		}
		in.clients = append(in.clients, c)
	}
	if cfg.Layer == "pubsub" {
		in.layer = newPubSub(in)
	} else {
		in.layer = newCore(in)
	}
	in.layer.run()
	in.wg.Add(1)
	go in.manage()
	return in, nil
}

// clientOption turns a CHANNEL_LAYERS host into rueidis options.
func clientOption(host string, cfg Config) (rueidis.ClientOption, error) {
	var opt rueidis.ClientOption
	if strings.Contains(host, "://") {
		o, err := rueidis.ParseURL(host)
		if err != nil {
			return opt, fmt.Errorf("host %s: %w", redactHost(host), err)
		}
		opt = o
	} else {
		if _, _, err := net.SplitHostPort(host); err != nil {
			return opt, fmt.Errorf("host %q: %w", host, err)
		}
		opt.InitAddress = []string{host}
	}
	if opt.TLSConfig != nil || cfg.TLS.Enabled { // rediss://, or TLS for every host
		t := cfg.TLS
		t.Enabled = true
		conf, err := t.Build()
		if err != nil {
			return opt, fmt.Errorf("compat.channels_redis.tls: %w", err)
		}
		if conf.ServerName == "" && len(opt.InitAddress) == 1 {
			conf.ServerName, _, _ = net.SplitHostPort(opt.InitAddress[0])
		}
		opt.TLSConfig = conf
	}
	opt.ForceSingleClient = true
	opt.DisableCache = true
	opt.Dialer = net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: time.Second}
	opt.ConnWriteTimeout = max(cfg.CommandTimeout, 3*time.Second)
	opt.ClientName = "herald-compat"
	return opt, nil
}

// redactHost is a CHANNEL_LAYERS host fit for a log line: a URL's
// password is replaced.
func redactHost(h string) string {
	if u, err := url.Parse(h); err == nil && strings.Contains(h, "://") {
		return u.Redacted()
	}
	return h
}

func (in *Ingest) closeClients() {
	for _, c := range in.clients {
		c.Close()
	}
}

// Interest tells the ingest that a local session subscribed to Herald
// channel ch. Channels no group rule maps are ignored. It never blocks on
// Redis: the membership or subscription is applied in the background.
func (in *Ingest) Interest(ch string) {
	g, ok := groupFor(in.rules, ch)
	if !ok {
		return
	}
	in.mu.Lock()
	st := in.groups[g]
	if st == nil {
		st = &groupState{}
		in.groups[g] = st
	}
	st.refs++
	if !st.joined {
		in.dirty = true
	}
	in.mu.Unlock()
	in.wake()
}

// Release undoes one Interest. The group stays joined for the configured
// linger after its last local subscriber left.
func (in *Ingest) Release(ch string) {
	g, ok := groupFor(in.rules, ch)
	if !ok {
		return
	}
	in.mu.Lock()
	if st := in.groups[g]; st != nil && st.refs > 0 {
		st.refs--
		if st.refs == 0 {
			st.idle = time.Now()
			in.dirty = true
		}
	}
	in.mu.Unlock()
	if in.cfg.Linger == 0 {
		in.wake()
	}
}

func (in *Ingest) wake() {
	select {
	case in.kick <- struct{}{}:
	default:
	}
}

// manage applies interest changes, ends lingering groups and refreshes
// memberships.
func (in *Ingest) manage() {
	defer in.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	refreshEvery := min(in.cfg.GroupExpiry/4, time.Hour)
	lastRefresh := time.Now()
	var lastVerify time.Time
	for {
		select {
		case <-in.ctx.Done():
			return
		case <-in.kick:
		case <-tick.C:
		}
		now := time.Now()
		var join, leave []string
		in.mu.Lock()
		for g, st := range in.groups {
			want := st.refs > 0 || now.Sub(st.idle) < in.cfg.Linger
			switch {
			case want && !st.joined:
				join = append(join, g)
				st.joined = true
			case !want:
				if st.joined {
					leave = append(leave, g)
				}
				delete(in.groups, g)
			}
		}
		in.dirty = false
		in.busy = true
		in.mu.Unlock()
		if len(join) > 0 || len(leave) > 0 {
			ctx, cancel := context.WithTimeout(in.ctx, 4*in.cfg.CommandTimeout)
			failed := in.layer.apply(ctx, join, leave)
			cancel()
			if len(failed) > 0 {
				in.mu.Lock()
				for _, g := range failed {
					if st := in.groups[g]; st != nil {
						st.joined = false
						in.dirty = true
					}
				}
				in.mu.Unlock()
			}
		}
		in.mu.Lock()
		in.busy = false
		in.mu.Unlock()
		refresh := now.Sub(lastRefresh) >= refreshEvery
		verify := now.Sub(lastVerify) >= verifyEvery*9/10 // the ticker may fire a little early
		if refresh || verify {
			groups := in.joined()
			ctx, cancel := context.WithTimeout(in.ctx, 4*in.cfg.CommandTimeout)
			if refresh {
				lastRefresh = now
				in.layer.refresh(ctx, groups)
			}
			if verify {
				lastVerify = now
				in.layer.verify(ctx, groups)
			}
			cancel()
		}
	}
}

// verifyEvery is how often the layer checks that Redis still holds the
// memberships it wrote.
const verifyEvery = time.Second

// joined returns the groups whose membership or subscription is applied.
func (in *Ingest) joined() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	groups := make([]string, 0, len(in.groups))
	for g, st := range in.groups {
		if st.joined {
			groups = append(groups, g)
		}
	}
	return groups
}

// Sync waits until every Interest and Release made before the call is
// reflected in Redis (memberships written, subscriptions confirmed), for
// tests and orderly start-up. Lingering groups stay joined.
func (in *Ingest) Sync(ctx context.Context) error {
	in.wake()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		in.mu.Lock()
		done := !in.dirty && !in.busy
		for _, st := range in.groups {
			if st.refs > 0 && !st.joined {
				done = false
			}
		}
		in.mu.Unlock()
		if done && in.layer.settled() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("compat: sync: %w", ctx.Err())
		case <-in.ctx.Done():
			return errors.New("compat: sync: ingest closed")
		case <-t.C:
			in.wake()
		}
	}
}

// SetTypes replaces the event types ingested (compat.channels_redis.types;
// empty: all) for the messages read from now on. Safe to call at any time.
func (in *Ingest) SetTypes(types []string) {
	var m map[string]bool
	if len(types) > 0 {
		m = make(map[string]bool, len(types))
		for _, t := range types {
			m[t] = true
		}
	}
	in.types.Store(&m)
}

// Stats returns the ingest's counters.
func (in *Ingest) Stats() Stats {
	in.mu.Lock()
	n := 0
	for _, st := range in.groups {
		if st.joined {
			n++
		}
	}
	in.mu.Unlock()
	s := &in.stats
	return Stats{
		Received: s.received.Load(), Published: s.published.Load(), Duplicates: s.duplicates.Load(),
		Malformed: s.malformed.Load(), InvalidUTF8: s.invalidUTF8.Load(), Skipped: s.skipped.Load(), Expired: s.expired.Load(),
		PublishErrors: s.publishErrors.Load(), Dropped: s.dropped.Load(),
		Groups: n, Leading: int(s.leading.Load()), Restored: s.restored.Load(),
	}
}

// Close stops reading, leaves every joined group (core) and closes the
// Redis connections. Messages already read are published first. Calls
// after the first do nothing.
func (in *Ingest) Close() error {
	in.closeOnce.Do(in.close)
	return nil
}

func (in *Ingest) close() {
	in.cancel()
	in.wg.Wait()
	in.mu.Lock()
	var leave []string
	for g, st := range in.groups {
		if st.joined {
			leave = append(leave, g)
		}
	}
	in.groups = map[string]*groupState{}
	in.mu.Unlock()
	if len(leave) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*in.cfg.CommandTimeout)
		in.layer.apply(ctx, nil, leave)
		cancel()
	}
	if r, ok := in.layer.(interface{ release(context.Context) }); ok {
		ctx, cancel := context.WithTimeout(context.Background(), in.cfg.CommandTimeout)
		r.release(ctx)
		cancel()
	}
	if c, ok := in.layer.(interface{ close() }); ok {
		c.close()
	}
	in.closeClients()
}

// event is one decoded channels event ready to publish.
type event struct {
	data []byte // JSON of the delivered value
}

// decodeEvent decodes a msgpack channels event, applies the types filter
// and the message key, and encodes the delivered value as JSON. It returns
// ok=false (after counting) for events to skip; the targets are the raw
// __asgi_channel__ entries.
func (in *Ingest) decodeEvent(payload []byte) (data []byte, targets []string, ok bool) {
	if len(payload) > in.cfg.MaxMessageBytes {
		in.malformed(fmt.Errorf("%w: %d bytes, more than max_message_bytes", ErrMalformed, len(payload)), payload)
		return nil, nil, false
	}
	v, err := DecodeMsgpack(payload)
	if err != nil {
		in.malformed(err, payload)
		return nil, nil, false
	}
	if v.kind != kindMap {
		in.malformed(fmt.Errorf("%w: the event is not a dict", ErrMalformed), payload)
		return nil, nil, false
	}
	if ac, found := v.Get("__asgi_channel__"); found {
		switch ac.kind {
		case kindString:
			targets = []string{ac.s}
		case kindArray:
			for i := range ac.arr {
				if s, isStr := ac.arr[i].Str(); isStr {
					targets = append(targets, s)
				}
			}
		}
	}
	if types := *in.types.Load(); types != nil {
		typ, _ := v.Get("type")
		if typ == nil || typ.kind != kindString || !types[typ.s] {
			in.stats.skipped.Add(1)
			return nil, nil, false
		}
	}
	val := &v
	if in.cfg.MessageKey != "*" {
		m, found := v.Get(in.cfg.MessageKey)
		if !found {
			in.stats.skipped.Add(1)
			in.limiter.do(func() {
				in.log.Info("channels event without the message key skipped", "key", in.cfg.MessageKey)
			})
			return nil, nil, false
		}
		val = m
	} else {
		// The whole event, without the layer's routing key.
		for i, k := range v.keys {
			if k == "__asgi_channel__" {
				v.keys = append(v.keys[:i:i], v.keys[i+1:]...)
				v.vals = append(v.vals[:i:i], v.vals[i+1:]...)
				break
			}
		}
	}
	data, err = AppendJSON(nil, val, in.style)
	if err != nil {
		in.malformed(err, payload)
		return nil, nil, false
	}
	return data, targets, true
}

func (in *Ingest) malformed(err error, payload []byte) {
	in.stats.malformed.Add(1)
	reason := "malformed"
	if errors.Is(err, ErrInvalidUTF8) {
		in.stats.invalidUTF8.Add(1)
		reason = "invalid_utf8"
	}
	in.limiter.do(func() {
		head := payload[:min(len(payload), 48)]
		in.log.Warn("malformed channels message skipped", "reason", reason, "err", err, "bytes", len(payload), "head", hex.EncodeToString(head))
	})
}

// deliver publishes data to ch, retrying failed publishes with backoff
// until deadline. It reports whether the message was published, and the
// broker's answer.
func (in *Ingest) deliver(ch string, data []byte, key string, deadline time.Time) (fanout.PublishResult, bool) {
	res, ok := in.publishRetry(ch, data, key, deadline)
	if ok {
		if res.Duplicate {
			in.stats.duplicates.Add(1)
		} else {
			in.stats.published.Add(1)
		}
	}
	return res, ok
}

// publishRetry publishes data to ch, retrying failed publishes with
// backoff until deadline. It counts failures, not outcomes.
func (in *Ingest) publishRetry(ch string, data []byte, key string, deadline time.Time) (fanout.PublishResult, bool) {
	backoff := 50 * time.Millisecond
	for {
		// Not derived from in.ctx: a message already taken from Redis gets
		// its publish even while the ingest closes.
		ctx, cancel := context.WithTimeout(context.Background(), in.cfg.CommandTimeout)
		res, err := in.publish(ctx, ch, data, fanout.PublishOptions{IdempotencyKey: key})
		cancel()
		if err == nil {
			return res, true
		}
		in.stats.publishErrors.Add(1)
		if errors.Is(err, fanout.ErrInvalidChannel) || time.Now().Add(backoff).After(deadline) || in.ctx.Err() != nil {
			in.stats.dropped.Add(1)
			in.log.Warn("channels message dropped: publish failed", "channel", ch, "err", err)
			return fanout.PublishResult{}, false
		}
		in.limiter.do(func() { in.log.Warn("publish of a channels message failed, retrying", "channel", ch, "err", err) })
		select {
		case <-time.After(backoff):
		case <-in.ctx.Done():
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// logLimiter lets one log line through per second.
type logLimiter struct{ last atomic.Int64 }

func (l *logLimiter) do(f func()) {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last < int64(time.Second) || !l.last.CompareAndSwap(last, now) {
		return
	}
	f()
}
