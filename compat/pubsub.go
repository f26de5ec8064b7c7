package compat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/redissub"
)

// pubsubQueue bounds the messages waiting for publish per host.
const pubsubQueue = 16384

// pubsub ingests from channels_redis.pubsub.RedisPubSubChannelLayer:
// group_send PUBLISHes msgpack.packb(event) on "<prefix>__group__<group>"
// on host consistent_hash of that name. Each Herald node subscribes to the
// groups its sessions need (plus linger).
//
// Every subscribed node receives every message, so a user connected to two
// nodes would get it twice. Each node therefore publishes with an
// idempotency key made of the payload's fingerprint and how many times
// this node saw that same payload within the dedupe window ("#1", "#2",
// …): copies received by other nodes carry the same key and the broker
// keeps one, while a real repeat (a second identical group_send) gets the
// next ordinal and is published again. Keys the broker holds for messages
// published before this node subscribed (an earlier identical message,
// before a restart) are skipped the same way: see psHost.floors.
type pubsub struct {
	in     *Ingest
	prefix string // "<prefix>__group__"
	hosts  []*psHost
}

type psHost struct {
	p      *pubsub
	idx    int
	client rueidis.Client
	queue  chan string // "<redis channel>\x00<payload>"
	kick   chan struct{}

	mu        sync.Mutex
	want      map[string]bool // Redis channels to be subscribed
	confirmed map[string]bool // subscriptions Redis confirmed on the current connection
	// floors holds, per Redis channel, its Herald channel's top read just
	// before the last SUBSCRIBE: a message this node receives is published
	// after it, so an idempotency key whose message sits at or below it
	// was left by an earlier identical message, not by a copy.
	floors map[string]fanout.Position

	seen map[[32]byte]*seenEntry // delivery goroutine only
}

type seenEntry struct {
	n    int
	last time.Time
}

func newPubSub(in *Ingest) *pubsub {
	p := &pubsub{in: in, prefix: in.cfg.Prefix + "__group__"}
	for i, c := range in.clients {
		p.hosts = append(p.hosts, &psHost{
			p: p, idx: i, client: c,
			queue: make(chan string, pubsubQueue), kick: make(chan struct{}, 1),
			want: map[string]bool{}, confirmed: map[string]bool{}, seen: map[[32]byte]*seenEntry{},
			floors: map[string]fanout.Position{},
		})
	}
	return p
}

func (p *pubsub) hostOf(redisChannel string) *psHost {
	return p.hosts[ConsistentHash(redisChannel, len(p.hosts))]
}

// apply changes the wanted subscriptions; the host goroutines subscribe.
func (p *pubsub) apply(_ context.Context, join, leave []string) []string {
	touched := map[*psHost]bool{}
	for _, g := range join {
		name := p.prefix + g
		h := p.hostOf(name)
		h.mu.Lock()
		h.want[name] = true
		h.mu.Unlock()
		touched[h] = true
	}
	for _, g := range leave {
		name := p.prefix + g
		h := p.hostOf(name)
		h.mu.Lock()
		delete(h.want, name)
		h.mu.Unlock()
		touched[h] = true
	}
	for h := range touched {
		select {
		case h.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

func (p *pubsub) refresh(context.Context, []string) {}

// verify does nothing: subscriptions live on the connection, and the
// subscriber resubscribes whenever it reconnects.
func (p *pubsub) verify(context.Context, []string) {}

func (p *pubsub) settled() bool {
	for _, h := range p.hosts {
		h.mu.Lock()
		ok := len(h.want) == len(h.confirmed)
		for n := range h.want {
			ok = ok && h.confirmed[n]
		}
		h.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
}

func (p *pubsub) run() {
	for _, h := range p.hosts {
		p.in.wg.Add(2)
		go h.subscriber()
		go h.deliverer()
	}
}

// subscriber keeps one dedicated pub/sub connection subscribed to the
// wanted channels, reconnecting with backoff (the broker's loop,
// redissub.Reconnect).
func (h *psHost) subscriber() {
	defer h.p.in.wg.Done()
	in := h.p.in
	redissub.Reconnect(in.ctx, nil, h.session, func(err error) {
		in.limiter.do(func() {
			in.log.Warn("channels pub/sub connection lost, reconnecting", "host", in.cfg.Hosts[h.idx], "err", err)
		})
	})
}

// session runs one pub/sub connection until it fails; up reports that it
// subscribed every wanted channel.
func (h *psHost) session(bool) (up bool, err error) {
	in := h.p.in
	conn := redissub.Open(h.client, redissub.Options{OnMessage: func(m rueidis.PubSubMessage) {
		select {
		case h.queue <- m.Channel + "\x00" + m.Message:
		default:
			in.stats.dropped.Add(1)
			in.limiter.do(func() { in.log.Warn("channels pub/sub queue full, message dropped", "channel", m.Channel) })
		}
	}})
	defer conn.Close()
	h.mu.Lock()
	clear(h.confirmed)
	h.mu.Unlock()
	subscribed := map[string]bool{}
	resync := func() error {
		h.mu.Lock()
		var sub, unsub []string
		for n := range h.want {
			if !subscribed[n] {
				sub = append(sub, n)
			}
		}
		for n := range subscribed {
			if !h.want[n] {
				unsub = append(unsub, n)
			}
		}
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(in.ctx, in.cfg.CommandTimeout)
		defer cancel()
		for len(sub) > 0 {
			n := min(len(sub), 1024)
			h.readFloors(ctx, sub[:n])
			if err := conn.Subscribe(ctx, sub[:n]); err != nil {
				return err
			}
			h.mu.Lock()
			for _, s := range sub[:n] {
				subscribed[s] = true
				h.confirmed[s] = true
			}
			h.mu.Unlock()
			sub = sub[n:]
		}
		for len(unsub) > 0 {
			n := min(len(unsub), 1024)
			if err := conn.Unsubscribe(ctx, unsub[:n]); err != nil {
				return err
			}
			h.mu.Lock()
			for _, s := range unsub[:n] {
				delete(subscribed, s)
				delete(h.confirmed, s)
			}
			h.mu.Unlock()
			unsub = unsub[n:]
		}
		return nil
	}
	if err := resync(); err != nil {
		return false, err
	}
	for {
		select {
		case <-in.ctx.Done():
			return true, in.ctx.Err()
		case err, ok := <-conn.Lost():
			return true, redissub.LostErr(err, ok)
		case err := <-conn.Dropped():
			return true, err
		case <-h.kick:
			if err := resync(); err != nil {
				return true, err
			}
		}
	}
}

// readFloors records the Herald channel tops of the Redis channels about
// to be subscribed (see floors). A top that cannot be read leaves no
// floor: every duplicate then counts as a copy.
func (h *psHost) readFloors(ctx context.Context, names []string) {
	in := h.p.in
	for _, name := range names {
		var top fanout.Position
		ok := false
		if group, found := strings.CutPrefix(name, h.p.prefix); found && in.top != nil {
			if ch, mapped := channelFor(in.rules, group); mapped {
				var err error
				top, err = in.top(ctx, ch)
				ok = err == nil
			}
		}
		h.mu.Lock()
		if ok {
			h.floors[name] = top
		} else {
			delete(h.floors, name)
		}
		h.mu.Unlock()
	}
}

// earlier reports whether pos, the position of the message an
// idempotency key belongs to, was published before this node subscribed
// to name, so that it cannot be a copy of what the node just received.
func (h *psHost) earlier(name string, pos fanout.Position) bool {
	h.mu.Lock()
	f, ok := h.floors[name]
	h.mu.Unlock()
	return ok && pos.Epoch == f.Epoch && pos.Offset <= f.Offset
}

// maxOrdinalSkips bounds how many stale keys one message skips.
const maxOrdinalSkips = 64

// deliverer publishes queued messages in order.
func (h *psHost) deliverer() {
	defer h.p.in.wg.Done()
	in := h.p.in
	purge := time.NewTicker(time.Minute)
	defer purge.Stop()
	for {
		select {
		case <-in.ctx.Done():
			// Publish what was already received.
			for {
				select {
				case m := <-h.queue:
					h.handle(m)
				default:
					return
				}
			}
		case now := <-purge.C:
			for k, e := range h.seen {
				if now.Sub(e.last) > in.cfg.DedupeWindow {
					delete(h.seen, k)
				}
			}
		case m := <-h.queue:
			h.handle(m)
		}
	}
}

func (h *psHost) handle(m string) {
	in := h.p.in
	in.stats.received.Add(1)
	name, payload, _ := strings.Cut(m, "\x00")
	group, ok := strings.CutPrefix(name, h.p.prefix)
	if !ok {
		in.stats.skipped.Add(1)
		return
	}
	ch, ok := channelFor(in.rules, group)
	if !ok {
		in.stats.skipped.Add(1)
		return
	}
	data, _, ok := in.decodeEvent([]byte(payload))
	if !ok {
		return
	}
	fp := sha256.Sum256([]byte(m))
	now := time.Now()
	e := h.seen[fp]
	if e == nil || now.Sub(e.last) > in.cfg.DedupeWindow {
		e = &seenEntry{}
		h.seen[fp] = e
	}
	e.last = now
	prefix := "cp:" + hex.EncodeToString(fp[:12]) + "#"
	for skips := 0; ; skips++ {
		e.n++
		res, ok := in.publishRetry(ch, data, prefix+strconv.Itoa(e.n), now.Add(in.cfg.Expiry))
		if !ok {
			return
		}
		if res.Duplicate && skips < maxOrdinalSkips && h.earlier(name, res.Pos) {
			// The key was left by an identical message sent before this
			// node subscribed (before a restart, or while it was cut off):
			// this is a new message. Take the next ordinal, as the nodes
			// that saw the earlier one do.
			continue
		}
		if res.Duplicate {
			in.stats.duplicates.Add(1)
		} else {
			in.stats.published.Add(1)
		}
		return
	}
}
