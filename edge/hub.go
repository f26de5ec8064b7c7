package edge

import (
	"context"
	"hash/maphash"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/protocols"
	"github.com/heraldrt/herald/telemetry"
)

// hubShards spreads channels over independently locked maps so connects,
// disconnects and deliveries on different channels do not contend.
const hubShards = 64

// Hub maps channels to the local sessions that receive them. The broker
// delivers each message to Hub.Deliver, which hands it to every local
// subscriber's queue; it never blocks and never writes to a socket.
type Hub struct {
	tracing *telemetry.Tracing // nil when tracing is off
	seed    maphash.Seed
	shards  [hubShards]hubShard

	smu      sync.Mutex
	sessions map[*protocols.Session]struct{}
}

type hubShard struct {
	mu    sync.RWMutex
	chans map[string]*subscribers
}

// subscribers is a set with cheap iteration (the slice) and O(1) removal
// (the index map, swap-remove).
type subscribers struct {
	list []*protocols.Session
	idx  map[*protocols.Session]int
}

// NewHub returns an empty hub; tr may be nil (no tracing).
func NewHub(tr *telemetry.Tracing) *Hub {
	h := &Hub{tracing: tr, seed: maphash.MakeSeed(), sessions: make(map[*protocols.Session]struct{})}
	for i := range h.shards {
		h.shards[i].chans = make(map[string]*subscribers)
	}
	return h
}

func (h *Hub) shard(ch string) *hubShard {
	return &h.shards[maphash.String(h.seed, ch)%hubShards]
}

// Add registers s for every channel it receives.
func (h *Hub) Add(s *protocols.Session) {
	for _, ch := range s.Channels() {
		sh := h.shard(ch)
		sh.mu.Lock()
		subs := sh.chans[ch]
		if subs == nil {
			subs = &subscribers{idx: make(map[*protocols.Session]int)}
			sh.chans[ch] = subs
		}
		if _, ok := subs.idx[s]; !ok {
			subs.idx[s] = len(subs.list)
			subs.list = append(subs.list, s)
		}
		sh.mu.Unlock()
	}
	h.smu.Lock()
	h.sessions[s] = struct{}{}
	h.smu.Unlock()
}

// Remove unregisters s. It is idempotent.
func (h *Hub) Remove(s *protocols.Session) {
	for _, ch := range s.Channels() {
		sh := h.shard(ch)
		sh.mu.Lock()
		if subs := sh.chans[ch]; subs != nil {
			if i, ok := subs.idx[s]; ok {
				last := len(subs.list) - 1
				moved := subs.list[last]
				subs.list[i] = moved
				subs.idx[moved] = i
				subs.list[last] = nil
				subs.list = subs.list[:last]
				delete(subs.idx, s)
				if len(subs.list) == 0 {
					delete(sh.chans, ch)
				}
			}
		}
		sh.mu.Unlock()
	}
	h.smu.Lock()
	delete(h.sessions, s)
	h.smu.Unlock()
}

// Deliver hands m to every local session subscribed to its channel. The
// broker's Handler is Server.deliver, which passes every message that is not
// a node control message on to Deliver.
func (h *Hub) Deliver(m *fanout.Message) {
	if h.tracing != nil && m.TraceParent != "" {
		h.deliverTraced(m)
		return
	}
	sh := h.shard(m.Channel)
	sh.mu.RLock()
	if subs := sh.chans[m.Channel]; subs != nil {
		for _, s := range subs.list {
			s.Enqueue(m)
		}
	}
	sh.mu.RUnlock()
}

// Count returns the number of local sessions subscribed to ch.
func (h *Hub) Count(ch string) int {
	sh := h.shard(ch)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if subs := sh.chans[ch]; subs != nil {
		return len(subs.list)
	}
	return 0
}

// Sessions returns a snapshot of all registered sessions.
func (h *Hub) Sessions() []*protocols.Session {
	h.smu.Lock()
	defer h.smu.Unlock()
	out := make([]*protocols.Session, 0, len(h.sessions))
	for s := range h.sessions {
		out = append(out, s)
	}
	return out
}

// Len returns the number of registered sessions.
func (h *Hub) Len() int {
	h.smu.Lock()
	defer h.smu.Unlock()
	return len(h.sessions)
}

// deliverTraced is Deliver with one Consumer span for the fan-out on this
// node, a child of and linked to the publish span carried in the message.
func (h *Hub) deliverTraced(m *fanout.Message) {
	tr := h.tracing
	pctx := tr.Propagator.Extract(context.Background(), propagation.MapCarrier{"traceparent": m.TraceParent})
	link := trace.LinkFromContext(pctx)
	_, span := tr.Tracer.Start(pctx, "herald.deliver "+m.Channel,
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(link))
	var counts [2]int
	var coalesced, dropped int
	sh := h.shard(m.Channel)
	sh.mu.RLock()
	if subs := sh.chans[m.Channel]; subs != nil {
		for _, s := range subs.list {
			res := s.Enqueue(m)
			counts[telemetry.TransportIndex(s.Transport().Name())]++
			switch res {
			case protocols.Coalesced:
				coalesced++
			case protocols.Dropped:
				dropped++
			}
			if tr.FollowUser != "" && s.UserID() == tr.FollowUser {
				span.AddEvent("enqueue", trace.WithAttributes(
					attribute.Int64("herald.session", int64(s.ID())),
					attribute.String("herald.transport", s.Transport().Name()),
					attribute.String("herald.remote", s.Remote()),
					attribute.Int("herald.result", int(res))))
			}
		}
	}
	sh.mu.RUnlock()
	attrs := []attribute.KeyValue{
		attribute.String("messaging.destination.name", m.Channel),
		attribute.Int64("herald.offset", int64(m.Pos.Offset)),
		attribute.Int("herald.recipients", counts[0]+counts[1]),
		attribute.Int("herald.recipients.ws", counts[0]),
		attribute.Int("herald.recipients.sse", counts[1]),
		attribute.Int("herald.coalesced", coalesced),
		attribute.Int("herald.dropped", dropped),
	}
	if m.PublishedAt > 0 {
		attrs = append(attrs, attribute.Int64("herald.queue_delay_us", (time.Now().UnixNano()-m.PublishedAt)/1000))
	}
	span.SetAttributes(attrs...)
	span.End()
}
