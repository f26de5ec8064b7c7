// Package protocols holds Herald's connection sessions and the two wire
// protocols they speak, WebSocket and Server-Sent Events.
//
// A Session is one client connection: the channels it receives, its
// position (cursor) in each, a bounded outbound queue, and the socket. The
// hub hands it messages with Enqueue; a pooled writer drains the queue and
// writes everything queued in one syscall, framed by the session's
// Transport. One goroutine per connection, the reader, waits on the socket.
package protocols

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/fanout"
)

// Historian is the part of a fanout.Broker a session needs to replay
// missed messages.
type Historian interface {
	History(ctx context.Context, channel string, since fanout.Position, limit int) (fanout.HistoryResult, error)
}

// Config holds the settings shared by all sessions of a node. Zero values
// mean the documented defaults (see Defaults).
type Config struct {
	// WriteTimeout bounds one socket write; a client that does not read for
	// this long is disconnected (default 10s).
	WriteTimeout time.Duration
	// WSPingInterval is how often a WebSocket ping is sent (default 25s).
	WSPingInterval time.Duration
	// WSReadTimeout closes a WebSocket that sent nothing, not even a pong,
	// for this long (default 60s).
	WSReadTimeout time.Duration
	// WSReadLimit is the largest client message accepted; larger ones close
	// the connection with 1009 (default 64 KiB).
	WSReadLimit int64
	// SSEHeartbeat is how often an idle SSE stream gets a comment line
	// (default 15s).
	SSEHeartbeat time.Duration
	// SSERetry is the reconnect delay suggested to EventSource (default 2s).
	SSERetry time.Duration
	// MaxQueue is the most messages queued for one connection before it is
	// disconnected as a slow consumer (default 1024). Replies to the
	// client (pongs, errors, refreshed) count like messages.
	MaxQueue int
	// MaxQueueBytes is the most payload bytes queued for one connection
	// (default 4 MiB), replies and events included.
	MaxQueueBytes int
	// ClientRate is how many frames per second a WebSocket client may send
	// (token bucket of ClientBurst); a client over it is closed with
	// CloseRateLimited. 0 disables the limit.
	ClientRate float64
	// ClientBurst is the client rate's bucket size (at least 1).
	ClientBurst int
	// HistoryTimeout bounds a history read during resume (default 5s).
	HistoryTimeout time.Duration
	// IdleTimeout closes a connection that neither received a message nor
	// sent one for this long (keepalives do not count); 0 disables it.
	IdleTimeout time.Duration
	// MaxLifetime ends a connection after about this long (±10% jitter so
	// reconnects spread out) with a reconnect hint; 0 disables it.
	MaxLifetime time.Duration
	// Coalesce maps a payload "type" to the member whose value identifies
	// what a message is about (oracle_upload_progress → transaction_id).
	// When a connection's queue is full, a newer message replaces a queued
	// one with the same type and value instead of the connection being
	// dropped.
	Coalesce map[string]string
	// TokenExpiringLead is how long before the token's expiry the client
	// gets a token_expiring event (SSE, and WebSocket in envelope format);
	// 0 disables the event.
	TokenExpiringLead time.Duration
	// UserIDString sends connection_established's user_id as a JSON string
	// even when it is an integer (stream.user_id_string).
	UserIDString bool
}

// Defaults returns c with zero fields set to their defaults.
func (c Config) Defaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.WSPingInterval, 25*time.Second)
	def(&c.WSReadTimeout, 60*time.Second)
	def(&c.SSEHeartbeat, 15*time.Second)
	def(&c.SSERetry, 2*time.Second)
	def(&c.HistoryTimeout, 5*time.Second)
	if c.WSReadLimit <= 0 {
		c.WSReadLimit = 64 << 10
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = 1024
	}
	if c.MaxQueueBytes <= 0 {
		c.MaxQueueBytes = 4 << 20
	}
	return c
}

// Counter is a monotonically increasing metric (a prometheus.Counter).
type Counter interface{ Add(float64) }

// Observer records a sample (a prometheus.Observer).
type Observer interface{ Observe(float64) }

// Metrics receives what sessions count. Index 0 of the per-transport
// arrays is WebSocket, 1 is SSE. Every field must be set.
type Metrics struct {
	Delivered     [2]Counter
	DeliveryTime  [2]Observer
	Coalesced     Counter
	SlowConsumers Counter
	Replayed      Counter
	// StreamReset counts a stream_reset event with its reason.
	StreamReset func(reason string)
}

// Env is what every session of a node shares: settings, the writer pool,
// history access and the logger.
type Env struct {
	Config  Config
	Writers *Writers
	History Historian
	Log     *slog.Logger
	// Metrics, when set, receives delivery counts and latencies.
	Metrics *Metrics
	// Refresh verifies a refreshed token sent by a WebSocket client, given
	// the connection's channels, and returns its user id and expiry; nil
	// disables refresh. A token that grants fewer channels than the
	// connection has yields an error wrapping ErrChannelsRevoked: the
	// connection is then closed (CloseChannelsRevoked) and the client
	// reconnects with the narrower token. A refresh never adds channels.
	Refresh func(token string, channels []string) (userID string, expires time.Time, err error)
}

// Options describe one connection.
type Options struct {
	// ID identifies the session in logs (unique per node).
	ID uint64
	// UserID is the authenticated user.
	UserID string
	// Channels are the channels the connection receives.
	Channels []string
	// Since is the cursor the client resumes from (may be empty).
	Since Cursor
	// ExpiresAt ends the connection with token_expired (zero: never).
	ExpiresAt time.Time
	// Transport frames what the session writes.
	Transport Transport
	// Remote is the client address, for logs.
	Remote string
	// Filter, when set, keeps only messages whose payload type it allows
	// (the client's ?types=); filtered messages still advance the cursor.
	Filter *TypeFilter
}

type itemKind uint8

const (
	itemMsg       itemKind = iota
	itemEvent              // control event, written with the cursor
	itemRaw                // bytes written as they are (WebSocket pong)
	itemKeepalive          // transport keepalive
	itemClose              // final bytes, then close
	itemSkip               // a message superseded by a newer one (coalesced): advances the position, writes nothing
)

type item struct {
	kind itemKind
	msg  *fanout.Message
	b    []byte
	// from is, for itemSkip, the lowest offset the marker covers; msg is
	// the highest. Adjacent markers merge, so a flood of superseded
	// progress messages costs one queue entry.
	from uint64
}

type chanState struct {
	name string
	hash uint32
	pos  fanout.Position
	// adopt makes the next message's position the channel's position,
	// whatever it is (after a stream_reset).
	adopt bool
	// retryAt remembers the offset a gap recovery last targeted, so a gap
	// history cannot fill is reported once instead of retried forever.
	retryAt uint64
}

// Session is one client connection. Its methods are safe for concurrent
// use.
type Session struct {
	env  *Env
	opts Options
	tr   Transport
	ti   int // transport index for metrics: 0 ws, 1 sse
	// noCursor: the transport never writes cursors (the guide's raw
	// WebSocket format), so building them is skipped.
	noCursor bool
	// deadline is the write deadline last set on conn (unix nanos); only
	// the flushing goroutine touches it.
	deadline int64
	// prefs is the user's stored type filter (applied with opts.Filter),
	// replaced live by SetPreferences.
	prefs atomic.Pointer[TypeFilter]
	conn  net.Conn

	mu         sync.Mutex
	chans      []chanState
	queue      []item
	queueBytes int
	scheduled  bool // a flush is queued or running
	ready      bool // attached to a socket and resume done
	recovering bool // a history read is filling a gap
	closing    bool
	closed     bool
	reason     CloseReason
	keepalive  *time.Timer
	// life fires at the next lifetime event: token_expiring, token expiry,
	// or the end of the maximum lifetime. One timer serves all three.
	life         *time.Timer
	expiresAt    time.Time
	lifetimeEnd  time.Time
	expiringSent bool

	lastWrite    atomic.Int64 // unix nanos
	lastActivity atomic.Int64 // unix nanos of the last message either way
	ended        atomic.Bool
	finished     chan struct{}
	connected    time.Time
}

// NewSession creates a session that is not yet attached to a socket.
// Register it with the hub, then call Resume, then Attach.
func NewSession(env *Env, opts Options) *Session {
	s := &Session{env: env, opts: opts, tr: opts.Transport, finished: make(chan struct{}), connected: time.Now()}
	if s.tr.Name() == "sse" {
		s.ti = 1
	}
	if ws, ok := s.tr.(WSTransport); ok && ws.Format == WSRaw {
		s.noCursor = true
	}
	s.chans = make([]chanState, len(opts.Channels))
	for i, ch := range opts.Channels {
		s.chans[i] = chanState{name: ch, hash: ChannelHash(ch)}
	}
	return s
}

// ID returns the session's id.
func (s *Session) ID() uint64 { return s.opts.ID }

// UserID returns the authenticated user id.
func (s *Session) UserID() string { return s.opts.UserID }

// allows applies the connection's filter and the user's preferences.
func (s *Session) allows(m *fanout.Message) bool {
	typ := messageType(m)
	return s.opts.Filter.Allows(typ) && s.prefs.Load().Allows(typ)
}

// SetPreferences replaces the user's stored type filter for this
// connection (nil: everything). Messages already written are not affected.
func (s *Session) SetPreferences(f *TypeFilter) { s.prefs.Store(f) }

// Remote returns the client address given in Options.
func (s *Session) Remote() string { return s.opts.Remote }

// Connected returns when the session was created.
func (s *Session) Connected() time.Time { return s.connected }

// Channels returns the channels the session receives. The slice must not
// be modified.
func (s *Session) Channels() []string { return s.opts.Channels }

// Transport returns the session's transport.
func (s *Session) Transport() Transport { return s.tr }

// Cursor returns the session's current cursor string.
func (s *Session) Cursor() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.appendCursorLocked(nil))
}

// cursorLocked returns the current cursor built in scratch, or nil when the
// transport does not write cursors.
func (s *Session) cursorLocked(scratch []byte) []byte {
	if s.noCursor {
		return nil
	}
	return s.appendCursorLocked(scratch[:0])
}

func (s *Session) appendCursorLocked(dst []byte) []byte {
	var buf [8]CursorEntry
	es := buf[:0]
	for i := range s.chans {
		if s.chans[i].pos.Epoch != 0 {
			es = append(es, CursorEntry{Hash: s.chans[i].hash, Pos: s.chans[i].pos})
		}
	}
	return AppendCursor(dst, es...)
}

// Resume sets the session's starting position in each channel: the
// client's cursor where it has one (queueing the retained messages it
// missed), the channel's current top otherwise. It must run after the
// session is registered for live delivery, so nothing published in between
// is lost; live messages that history also returned are dropped as
// duplicates. It queues the connection_established event first.
func (s *Session) Resume(ctx context.Context) error {
	pre := []item{{kind: itemEvent, b: EstablishedEvent(s.tr.Name(), s.opts.UserID, s.env.Config.UserIDString)}}
	var msgs []item
	positions := make([]fanout.Position, len(s.chans))
	for i := range s.chans {
		ch := s.chans[i].name
		since, ok := s.opts.Since.Lookup(s.chans[i].hash)
		hctx, cancel := context.WithTimeout(ctx, s.env.Config.HistoryTimeout)
		var res fanout.HistoryResult
		var err error
		if ok {
			res, err = s.env.History.History(hctx, ch, since, 0)
		} else {
			res, err = s.env.History.History(hctx, ch, fanout.Position{}, 0)
		}
		cancel()
		switch {
		case err == nil && ok:
			positions[i] = since
			for _, m := range res.Messages {
				msgs = append(msgs, item{kind: itemMsg, msg: m})
			}
		case err == nil:
			positions[i] = res.Top
		case errors.Is(err, fanout.ErrHistoryGone):
			positions[i] = res.Top
			pre = append(pre, item{kind: itemEvent, b: s.resetEvent(ch, resetReason(err))})
			if errors.Is(err, fanout.ErrEpochChanged) {
				// The cursor's epoch ended (a restarted broker, a shard that
				// lost its data): the client gets the new epoch from its
				// beginning, as far as it is retained, not only what comes
				// after now.
				if pos, early := s.newEpochStart(ctx, ch, res.Top); len(early) > 0 {
					positions[i] = pos
					for _, m := range early {
						msgs = append(msgs, item{kind: itemMsg, msg: m})
					}
				}
			}
		default:
			return err
		}
	}
	if mt := s.env.Metrics; mt != nil && len(msgs) > 0 {
		mt.Replayed.Add(float64(len(msgs)))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.chans {
		s.chans[i].pos = positions[i]
	}
	// Replayed messages are queued like live ones: buildLocked takes their
	// bytes off queueBytes again, so they must be counted here.
	for _, it := range msgs {
		s.queueBytes += len(it.msg.Data)
	}
	for _, it := range pre {
		s.queueBytes += len(it.b)
	}
	q := make([]item, 0, len(pre)+len(msgs)+len(s.queue))
	q = append(append(append(q, pre...), msgs...), s.queue...)
	s.queue = q
	return nil
}

// newEpochStart reads channel's retained messages of the epoch top
// belongs to, from that epoch's first offset. It returns the position just
// before them and the messages, or nothing when the epoch's start is no
// longer retained (or the read fails): the client then continues from top,
// and the stream_reset it was given covers the rest.
func (s *Session) newEpochStart(ctx context.Context, ch string, top fanout.Position) (fanout.Position, []*fanout.Message) {
	if top.Epoch == 0 || top.Offset == 0 {
		return top, nil
	}
	start := fanout.Position{Epoch: top.Epoch}
	hctx, cancel := context.WithTimeout(ctx, s.env.Config.HistoryTimeout)
	res, err := s.env.History.History(hctx, ch, start, 0)
	cancel()
	if err != nil || len(res.Messages) == 0 || res.Messages[0].Pos != (fanout.Position{Epoch: top.Epoch, Offset: 1}) {
		return top, nil
	}
	return start, res.Messages
}

// resetEvent builds a stream_reset event and counts it.
func (s *Session) resetEvent(channel, reason string) []byte {
	if mt := s.env.Metrics; mt != nil {
		mt.StreamReset(reason)
	}
	return StreamResetEvent(channel, reason)
}

func resetReason(err error) string {
	if errors.Is(err, fanout.ErrEpochChanged) {
		return "epoch_changed"
	}
	return "history_expired"
}

// Attach binds the session to its socket and starts writing: the resume
// events and messages first, then live ones. It arms the keepalive and
// token expiry timers.
func (s *Session) Attach(conn net.Conn) {
	s.mu.Lock()
	s.conn = conn
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.ready = true
	interval := s.env.Config.SSEHeartbeat
	if s.tr.Name() == "ws" {
		interval = s.env.Config.WSPingInterval
	}
	s.keepalive = time.AfterFunc(interval, func() { s.onKeepalive(interval) })
	s.lastActivity.Store(time.Now().UnixNano())
	if lt := s.env.Config.MaxLifetime; lt > 0 {
		jitter := time.Duration(rand.Int64N(int64(lt)/5+1)) - lt/10
		s.lifetimeEnd = time.Now().Add(lt + jitter)
	}
	s.expiresAt = s.opts.ExpiresAt
	s.armLifeLocked()
	sched := s.scheduleLocked()
	s.mu.Unlock()
	if sched {
		s.env.Writers.schedule(s)
	}
}

func (s *Session) setExpiryLocked(t time.Time) {
	s.expiresAt = t
	s.expiringSent = false
	s.armLifeLocked()
}

// expiringAt is when token_expiring is due (zero when not applicable).
func (s *Session) expiringAtLocked() time.Time {
	lead := s.env.Config.TokenExpiringLead
	if lead <= 0 || s.expiringSent || s.expiresAt.IsZero() || !s.wantsExpiring() {
		return time.Time{}
	}
	return s.expiresAt.Add(-lead)
}

// wantsExpiring: SSE clients cannot refresh in band, so they are told to
// reconnect with a new token; envelope WebSocket clients (SDKs) may refresh.
// The guide's raw WebSocket format gets no extra message type.
func (s *Session) wantsExpiring() bool {
	switch t := s.tr.(type) {
	case SSETransport:
		return true
	case WSTransport:
		return t.Format == WSEnvelope
	}
	return false
}

// armLifeLocked sets the life timer to the earliest pending event.
func (s *Session) armLifeLocked() {
	var next time.Time
	for _, t := range []time.Time{s.expiringAtLocked(), s.expiresAt, s.lifetimeEnd} {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if next.IsZero() {
		return
	}
	d := time.Until(next)
	if s.life == nil {
		s.life = time.AfterFunc(d, s.onLife)
	} else {
		s.life.Reset(d)
	}
}

func (s *Session) onLife() {
	now := time.Now()
	s.mu.Lock()
	if s.closing || s.closed {
		s.mu.Unlock()
		return
	}
	switch {
	case !s.expiresAt.IsZero() && !now.Before(s.expiresAt):
		s.mu.Unlock()
		s.Close(CloseTokenExpired)
		return
	case !s.lifetimeEnd.IsZero() && !now.Before(s.lifetimeEnd):
		s.mu.Unlock()
		s.Close(CloseMaxLifetime)
		return
	}
	var ev []byte
	if at := s.expiringAtLocked(); !at.IsZero() && !now.Before(at) {
		s.expiringSent = true
		ev = TokenExpiringEvent(s.expiresAt)
	}
	s.armLifeLocked()
	s.mu.Unlock()
	if ev != nil {
		s.SendEvent(ev)
	}
}

// ExpiresAt returns when the session's token expires.
func (s *Session) ExpiresAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expiresAt
}

func (s *Session) onKeepalive(interval time.Duration) {
	last := s.lastWrite.Load()
	// An SSE stream that wrote recently needs no heartbeat; a WebSocket
	// always gets its ping so the client's pong keeps the read deadline
	// fresh.
	if s.tr.Name() == "ws" || time.Since(time.Unix(0, last)) >= interval/2 {
		s.enqueue(item{kind: itemKeepalive})
	}
	if idle := s.env.Config.IdleTimeout; idle > 0 && time.Since(time.Unix(0, s.lastActivity.Load())) >= idle {
		s.Close(CloseIdle)
		return
	}
	s.mu.Lock()
	if !s.closed && !s.closing {
		s.keepalive.Reset(interval)
	}
	s.mu.Unlock()
}

// scheduleLocked marks the session scheduled and reports whether the
// caller must hand it to the writers.
func (s *Session) scheduleLocked() bool {
	if s.scheduled || !s.ready || s.recovering || s.closed || len(s.queue) == 0 {
		return false
	}
	s.scheduled = true
	return true
}

// EnqueueResult says what Enqueue did with a message.
type EnqueueResult uint8

// Enqueue results.
const (
	// Queued: the message will be written.
	Queued EnqueueResult = iota
	// Coalesced: the queue was full; superseded messages gave way and the
	// message was queued.
	Coalesced
	// Dropped: the queue was full and nothing could be coalesced; the
	// connection is being closed as a slow consumer (its client resumes
	// from its cursor).
	Dropped
	// Closed: the connection is closing; the message was ignored.
	Closed
)

// Enqueue queues message m for the connection. It never blocks: a
// connection whose queue is full is closed as a slow consumer (its client
// resumes from its cursor, so nothing is lost).
func (s *Session) Enqueue(m *fanout.Message) EnqueueResult {
	s.mu.Lock()
	if s.closing || s.closed {
		s.mu.Unlock()
		return Closed
	}
	res := Queued
	if len(s.queue) >= s.env.Config.MaxQueue || s.queueBytes+len(m.Data) > s.env.Config.MaxQueueBytes {
		// Full: first coalesce — queued messages superseded by a newer one
		// with the same coalescing key (m included) give way, so a slow
		// client gets the latest progress rather than a backlog; only if
		// that frees no room is the client disconnected.
		if !s.makeRoomLocked(m) {
			s.slowConsumerLocked()
			sched := s.scheduleLocked()
			s.mu.Unlock()
			if sched {
				s.env.Writers.schedule(s)
			}
			return Dropped
		}
		res = Coalesced
	}
	s.queue = append(s.queue, item{kind: itemMsg, msg: m})
	s.queueBytes += len(m.Data)
	sched := s.scheduleLocked()
	s.mu.Unlock()
	if sched {
		s.env.Writers.schedule(s)
	}
	return res
}

// SendEvent queues a control event (a JSON object) for the client.
func (s *Session) SendEvent(ev []byte) { s.enqueue(item{kind: itemEvent, b: ev}) }

// enqueue queues an item Herald sends of its own accord (keepalives and
// lifetime events, one per timer tick); its bytes count in queueBytes.
func (s *Session) enqueue(it item) {
	s.mu.Lock()
	if s.closing || s.closed {
		s.mu.Unlock()
		return
	}
	s.queue = append(s.queue, it)
	s.queueBytes += len(it.b)
	sched := s.scheduleLocked()
	s.mu.Unlock()
	if sched {
		s.env.Writers.schedule(s)
	}
}

// reply queues an answer to something the client sent (a pong, an error
// event, refreshed). Replies are bounded exactly like messages: a client
// that keeps asking without reading fills its queue and is closed as a
// slow consumer, its backlog dropped, so a request flood costs at most
// MaxQueue items and MaxQueueBytes.
func (s *Session) reply(it item) {
	s.mu.Lock()
	if s.closing || s.closed {
		s.mu.Unlock()
		return
	}
	if len(s.queue) >= s.env.Config.MaxQueue || s.queueBytes+len(it.b) > s.env.Config.MaxQueueBytes {
		s.slowConsumerLocked()
	} else {
		s.queue = append(s.queue, it)
		s.queueBytes += len(it.b)
	}
	sched := s.scheduleLocked()
	s.mu.Unlock()
	if sched {
		s.env.Writers.schedule(s)
	}
}

// slowConsumerLocked closes a connection whose queue is full, dropping its
// backlog (the client resumes from its cursor).
func (s *Session) slowConsumerLocked() {
	if mt := s.env.Metrics; mt != nil {
		mt.SlowConsumers.Add(1)
	}
	if s.env.Log != nil {
		s.env.Log.Info("slow consumer", "session", s.opts.ID, "user", s.opts.UserID, "queued", len(s.queue), "queued_bytes", s.queueBytes)
	}
	s.closeLocked(CloseSlowConsumer, true)
}

// isClosing reports whether the session is closing or closed.
func (s *Session) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing || s.closed
}

// Close ends the connection for reason r: what is queued is written
// (except for a slow consumer, whose backlog is dropped), then the final
// event or close frame, then the socket is closed.
func (s *Session) Close(r CloseReason) {
	s.mu.Lock()
	if s.closing || s.closed {
		s.mu.Unlock()
		return
	}
	s.closeLocked(r, false)
	sched := s.scheduleLocked()
	ready := s.ready
	s.mu.Unlock()
	if !ready {
		s.terminate()
		return
	}
	if sched {
		s.env.Writers.schedule(s)
	}
}

func (s *Session) closeLocked(r CloseReason, drop bool) {
	s.closing = true
	s.reason = r
	if drop {
		clear(s.queue)
		s.queue = s.queue[:0]
		s.queueBytes = 0
	}
	s.queue = append(s.queue, item{kind: itemClose})
	// Whatever happens to the writer, the socket is closed soon.
	time.AfterFunc(s.env.Config.WriteTimeout+time.Second, s.terminate)
}

// CloseReason returns why the session was closed (zero if it was not
// closed by Herald).
func (s *Session) CloseReason() CloseReason {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

// terminate closes the socket and stops the timers. It is idempotent.
func (s *Session) terminate() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.queue = nil
	if s.keepalive != nil {
		s.keepalive.Stop()
	}
	if s.life != nil {
		s.life.Stop()
	}
	conn := s.conn
	s.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
	close(s.finished)
}

// finish ends the read side: when Herald is closing the connection it lets
// the writer send the final frame first (bounded by the write timeout),
// otherwise the client is gone and the socket is closed at once.
func (s *Session) finish() {
	s.mu.Lock()
	closing := s.closing && !s.closed
	s.mu.Unlock()
	if closing {
		t := time.NewTimer(s.env.Config.WriteTimeout)
		select {
		case <-s.finished:
		case <-t.C:
		}
		t.Stop()
	}
	s.terminate()
}

// Attached reports whether Attach has run.
func (s *Session) Attached() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn != nil
}

// MarkEnded records that the owner has released the session; it returns
// true only for the first call, so cleanup runs once.
func (s *Session) MarkEnded() bool { return s.ended.CompareAndSwap(false, true) }

// Touch records client activity (a message from the client) for the idle
// timeout.
func (s *Session) Touch() { s.lastActivity.Store(time.Now().UnixNano()) }

// Done is closed once the session's socket is closed.
func (s *Session) Done() <-chan struct{} { return s.finished }

// flush writes everything queued, in as few writes as possible. It runs on
// a writer goroutine, never concurrently with itself for one session.
func (s *Session) flush() {
	bp := s.env.Writers.getBuf()
	defer s.env.Writers.putBuf(bp)
	for {
		s.mu.Lock()
		if s.closed || !s.ready || s.recovering {
			s.scheduled = false
			s.mu.Unlock()
			return
		}
		if len(s.queue) == 0 {
			s.scheduled = false
			s.mu.Unlock()
			return
		}
		buf, final := s.buildLocked(bp.out[:0], bp.cur[:0])
		if len(buf) == 0 && !final {
			s.scheduled = false
			s.mu.Unlock()
			return
		}
		conn := s.conn
		s.mu.Unlock()
		bp.out = buf
		err := s.write(conn, buf)
		if err != nil || final {
			if err != nil && s.env.Log != nil && s.env.Log.Enabled(context.Background(), slog.LevelDebug) {
				s.env.Log.Debug("write failed", "session", s.opts.ID, "user", s.opts.UserID, "err", err)
			}
			s.terminate()
			return
		}
	}
}

func (s *Session) write(conn net.Conn, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	now := time.Now()
	// Refreshing the deadline costs a runtime timer update per write; doing
	// it only when less than half the timeout is left still bounds every
	// write by between half and the whole write timeout.
	if wt := s.env.Config.WriteTimeout; now.UnixNano()+int64(wt/2) > s.deadline {
		s.deadline = now.Add(wt).UnixNano()
		if err := conn.SetWriteDeadline(time.Unix(0, s.deadline)); err != nil {
			return err
		}
	}
	_, err := conn.Write(b)
	s.lastWrite.Store(now.UnixNano())
	return err
}

// maxBatchBytes caps one write so a long backlog is sent in several
// syscalls rather than one huge buffer.
const maxBatchBytes = 256 << 10

// buildLocked frames queued items into buf. It applies each message to its
// channel's position: duplicates are dropped, a new epoch becomes a
// stream_reset, and a gap stops the batch and starts a history read.
// final reports that the close item was framed.
func (s *Session) buildLocked(buf, cur []byte) (out []byte, final bool) {
	var now int64 // taken once per batch, at the first message
	i := 0
	for ; i < len(s.queue) && len(buf) < maxBatchBytes; i++ {
		it := s.queue[i]
		switch it.kind {
		case itemMsg, itemSkip:
			m := it.msg
			skip := it.kind == itemSkip
			if !skip {
				s.queueBytes -= len(m.Data)
			}
			st := s.chanFor(m.Channel)
			if st == nil {
				continue
			}
			first := m.Pos.Offset // lowest offset this entry covers
			if skip {
				first = it.from
			}
			if st.adopt {
				st.adopt = false
				st.pos = fanout.Position{Epoch: m.Pos.Epoch, Offset: first - 1}
			}
			if m.Pos.Epoch != st.pos.Epoch {
				buf = s.tr.AppendEvent(buf, s.resetEvent(st.name, "epoch_changed"), s.cursorLocked(cur))
				st.pos = fanout.Position{Epoch: m.Pos.Epoch}
				st.retryAt = 0 // an offset of the old epoch says nothing about the new one
			}
			if m.Pos.Offset <= st.pos.Offset {
				continue // already delivered
			}
			if first > st.pos.Offset+1 {
				if !skip {
					s.queueBytes += len(m.Data)
				}
				if st.retryAt == m.Pos.Offset {
					// History could not fill this gap before: report it and
					// move on rather than retrying forever.
					buf = s.tr.AppendEvent(buf, s.resetEvent(st.name, "history_expired"), s.cursorLocked(cur))
					st.pos.Offset = first - 1
					i--
					continue
				}
				st.retryAt = m.Pos.Offset
				s.recovering = true
				go s.recoverGap(st.name, st.pos)
				n := copy(s.queue, s.queue[i:])
				clear(s.queue[n:])
				s.queue = s.queue[:n]
				return buf, false
			}
			st.pos = m.Pos
			if skip {
				continue
			}
			if (s.opts.Filter != nil || s.prefs.Load() != nil) && !s.allows(m) {
				continue // filtered out: the position advances, nothing is written
			}
			buf = s.tr.AppendMessage(buf, m, s.cursorLocked(cur))
			if now == 0 {
				now = time.Now().UnixNano()
				s.lastActivity.Store(now)
			}
			if mt := s.env.Metrics; mt != nil {
				mt.Delivered[s.ti].Add(1)
				if m.PublishedAt > 0 {
					mt.DeliveryTime[s.ti].Observe(float64(now-m.PublishedAt) / 1e9)
				}
			}
		case itemEvent:
			s.queueBytes -= len(it.b)
			buf = s.tr.AppendEvent(buf, it.b, s.cursorLocked(cur))
		case itemRaw:
			s.queueBytes -= len(it.b)
			buf = append(buf, it.b...)
		case itemKeepalive:
			buf = s.tr.AppendKeepalive(buf)
		case itemClose:
			buf = s.tr.AppendClose(buf, s.reason, s.cursorLocked(cur))
			final = true
			i = len(s.queue) - 1 // nothing after the close is written
		}
	}
	n := copy(s.queue, s.queue[i:])
	clear(s.queue[n:])
	s.queue = s.queue[:n]
	if n == 0 && cap(s.queue) > 64 {
		s.queue = nil // do not keep a burst's backing array on an idle connection
	}
	return buf, final
}

// makeRoomLocked coalesces the queue for m: every queued message that a
// newer one (queued, or m) supersedes — same channel, same coalescing key —
// becomes a skip marker, and adjacent markers merge. It reports whether m
// now fits. It runs only when a queue is full, so the hot path never pays
// for it.
func (s *Session) makeRoomLocked(m *fanout.Message) bool {
	rules := s.env.Config.Coalesce
	if len(rules) == 0 {
		return false
	}
	build := func(m *fanout.Message) []byte { return coalesceKey(m.Data, rules) }
	id := func(x *fanout.Message) string {
		k := x.Encoded(slotCoalesce, build)
		if len(k) == 0 {
			return ""
		}
		return x.Channel + "\x00" + string(k)
	}
	seen := make(map[string]struct{})
	if k := id(m); k != "" {
		seen[k] = struct{}{}
	}
	for i := len(s.queue) - 1; i >= 0; i-- {
		it := &s.queue[i]
		if it.kind != itemMsg {
			continue
		}
		k := id(it.msg)
		if k == "" {
			continue
		}
		if _, newer := seen[k]; newer {
			it.kind, it.from = itemSkip, it.msg.Pos.Offset
			s.queueBytes -= len(it.msg.Data)
			if mt := s.env.Metrics; mt != nil {
				mt.Coalesced.Add(1)
			}
		} else {
			seen[k] = struct{}{}
		}
	}
	out := s.queue[:0]
	live := 0
	for _, it := range s.queue {
		if it.kind == itemSkip && len(out) > 0 {
			if p := &out[len(out)-1]; p.kind == itemSkip && p.msg.Channel == it.msg.Channel &&
				p.msg.Pos.Epoch == it.msg.Pos.Epoch && p.msg.Pos.Offset+1 == it.from {
				p.msg = it.msg
				continue
			}
		}
		if it.kind != itemSkip {
			live++
		}
		out = append(out, it)
	}
	clear(s.queue[len(out):])
	s.queue = out
	return live < s.env.Config.MaxQueue && len(s.queue) < 2*s.env.Config.MaxQueue &&
		s.queueBytes+len(m.Data) <= s.env.Config.MaxQueueBytes
}

func (s *Session) chanFor(name string) *chanState {
	for i := range s.chans {
		if s.chans[i].name == name {
			return &s.chans[i]
		}
	}
	return nil
}

// recoverGap reads the messages of channel after since from history and
// puts them in front of the queue, then resumes writing.
func (s *Session) recoverGap(channel string, since fanout.Position) {
	ctx, cancel := context.WithTimeout(context.Background(), s.env.Config.HistoryTimeout)
	res, err := s.env.History.History(ctx, channel, since, 0)
	cancel()
	s.mu.Lock()
	s.recovering = false
	if s.closed {
		s.mu.Unlock()
		return
	}
	switch {
	case err == nil:
		if mt := s.env.Metrics; mt != nil && len(res.Messages) > 0 {
			mt.Replayed.Add(float64(len(res.Messages)))
		}
		pre := make([]item, 0, len(res.Messages)+len(s.queue))
		for _, m := range res.Messages {
			pre = append(pre, item{kind: itemMsg, msg: m})
			s.queueBytes += len(m.Data)
		}
		s.queue = append(pre, s.queue...)
	case errors.Is(err, fanout.ErrHistoryGone):
		if st := s.chanFor(channel); st != nil {
			st.adopt = true
		}
		ev := s.resetEvent(channel, resetReason(err))
		s.queueBytes += len(ev)
		s.queue = append([]item{{kind: itemEvent, b: ev}}, s.queue...)
	default:
		if s.env.Log != nil {
			s.env.Log.Warn("history read failed during gap recovery", "session", s.opts.ID, "channel", channel, "err", err)
		}
		s.closeLocked(CloseInternal, true)
	}
	sched := s.scheduleLocked()
	s.mu.Unlock()
	if sched {
		s.env.Writers.schedule(s)
	}
}

// TypeFilters returns the connection's ?types= filter and the user's
// stored preferences, in ?types= syntax ("" when unset).
func (s *Session) TypeFilters() (conn, prefs string) {
	return s.opts.Filter.String(), s.prefs.Load().String()
}
