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
// next ordinal and is published again.
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
	confirmed map[string]bool // subscriptions Redis confirmed

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
// wanted channels, reconnecting with backoff.
func (h *psHost) subscriber() {
	defer h.p.in.wg.Done()
	in := h.p.in
	backoff := 100 * time.Millisecond
	for in.ctx.Err() == nil {
		up, err := h.session()
		if in.ctx.Err() != nil {
			return
		}
		if up {
			backoff = 100 * time.Millisecond
		}
		in.limiter.do(func() {
			in.log.Warn("channels pub/sub connection lost, reconnecting", "host", in.cfg.Hosts[h.idx], "err", err)
		})
		select {
		case <-in.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (h *psHost) session() (up bool, err error) {
	in := h.p.in
	dc, release := h.client.Dedicate()
	defer release()
	errCh := dc.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage: func(m rueidis.PubSubMessage) {
			select {
			case h.queue <- m.Channel + "\x00" + m.Message:
			default:
				in.stats.dropped.Add(1)
				in.limiter.do(func() { in.log.Warn("channels pub/sub queue full, message dropped", "channel", m.Channel) })
			}
		},
		OnSubscription: func(s rueidis.PubSubSubscription) {
			h.mu.Lock()
			switch s.Kind {
			case "subscribe":
				h.confirmed[s.Channel] = true
			case "unsubscribe":
				delete(h.confirmed, s.Channel)
			}
			h.mu.Unlock()
		},
	})
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
			if err := dc.Do(ctx, dc.B().Subscribe().Channel(sub[:n]...).Build()).Error(); err != nil {
				return err
			}
			for _, s := range sub[:n] {
				subscribed[s] = true
			}
			sub = sub[n:]
		}
		for len(unsub) > 0 {
			n := min(len(unsub), 1024)
			if err := dc.Do(ctx, dc.B().Unsubscribe().Channel(unsub[:n]...).Build()).Error(); err != nil {
				return err
			}
			for _, s := range unsub[:n] {
				delete(subscribed, s)
			}
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
		case err := <-errCh:
			return true, err
		case <-h.kick:
			if err := resync(); err != nil {
				return true, err
			}
		}
	}
}

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
	e.n++
	e.last = now
	key := "cp:" + hex.EncodeToString(fp[:12]) + "#" + strconv.Itoa(e.n)
	in.deliver(ch, data, key, now.Add(in.cfg.Expiry))
}
