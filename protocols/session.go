// Package protocols holds Herald's connection sessions and the two wire
// protocols they speak, WebSocket and Server-Sent Events.
//
// A Session is one client connection: the channels it receives, its
// position (cursor) in each, a bounded outbound queue, and the socket. The
// hub hands it messages with Enqueue; a pooled writer drains the queue and
// writes everything queued in one syscall, framed by the session's
// Transport. One goroutine per connection, the reader, waits on the socket
// — or none, when the node parks idle sockets on its epoll poller (Env.Poller,
// see park.go).
package protocols

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/netpoll"
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

// defaultHistoryTimeout bounds a history read during resume.
const defaultHistoryTimeout = 5 * time.Second

// Defaults returns c with zero fields set to their defaults (those of
// DefaultStreamConfig).
func (c Config) Defaults() Config {
	d := DefaultStreamConfig()
	def := func(v *time.Duration, dv time.Duration) {
		if *v <= 0 {
			*v = dv
		}
	}
	def(&c.WriteTimeout, d.WriteTimeout)
	def(&c.WSPingInterval, d.WSPingInterval)
	def(&c.WSReadTimeout, d.WSReadTimeout)
	def(&c.SSEHeartbeat, d.SSEHeartbeat)
	def(&c.SSERetry, d.SSERetry)
	def(&c.HistoryTimeout, defaultHistoryTimeout)
	if c.WSReadLimit <= 0 {
		c.WSReadLimit = d.WSReadLimit
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = d.MaxQueue
	}
	if c.MaxQueueBytes <= 0 {
		c.MaxQueueBytes = d.MaxQueueBytes
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
	// Log receives the sessions' log lines; nil discards them.
	Log *slog.Logger
	// Metrics, when set, receives delivery counts and latencies.
	Metrics *Metrics
	// Refresh verifies a refreshed token sent by a WebSocket client, given
	// the connection's channels, and returns its user id and expiry; nil
	// disables refresh. A token that grants fewer channels than the
	// connection has yields an error wrapping ErrChannelsRevoked: the
	// connection is then closed (CloseChannelsRevoked) and the client
	// reconnects with the narrower token. A refresh never adds channels.
	Refresh func(token string, channels []string) (userID string, expires time.Time, err error)
	// Poller, when set, parks idle connections (Session.Run) instead of
	// keeping a reader goroutine per connection (server.netpoll).
	Poller *netpoll.Poller
}

// discardLog stands in for Env.Log when it is nil, so sessions log
// without checking.
var discardLog = slog.New(slog.DiscardHandler)

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
	// log is env.Log, or a logger that discards when Env has none.
	log *slog.Logger

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
	// parked is the read side when the socket is parked on Env.Poller.
	parked *parkState
	// life fires at the next lifetime event: token_expiring, token expiry,
	// or the end of the maximum lifetime. One timer serves all three.
	life         *time.Timer
	expiresAt    time.Time
	lifetimeEnd  time.Time
	expiringSent bool

	lastWrite    atomic.Int64 // unix nanos
	lastFrame    atomic.Int64 // unix nanos of the last client frame (parked WebSocket)
	readEnded    atomic.Bool  // a parked read side has ended
	lastActivity atomic.Int64 // unix nanos of the last message either way
	ended        atomic.Bool
	finished     chan struct{}
	connected    time.Time
}

// NewSession creates a session that is not yet attached to a socket.
// Register it with the hub, then call Resume, then Attach.
func NewSession(env *Env, opts Options) *Session {
	s := &Session{env: env, opts: opts, tr: opts.Transport, log: env.Log, finished: make(chan struct{}), connected: time.Now()}
	if s.log == nil {
		s.log = discardLog
	}
	s.ti = int(s.tr.Kind())
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
	parked := s.parked != nil
	s.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
	close(s.finished)
	if parked {
		// A closed socket leaves the epoll set without an event: end
		// the parked read side here.
		s.endReadAsync()
	}
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

// TypeFilters returns the connection's ?types= filter and the user's
// stored preferences, in ?types= syntax ("" when unset).
func (s *Session) TypeFilters() (conn, prefs string) {
	return s.opts.Filter.String(), s.prefs.Load().String()
}
