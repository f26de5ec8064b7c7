// Package edge is Herald's HTTP edge: the fasthttp server, routing,
// authentication of connecting users, the publish API, and the hub that
// connects the broker to local sessions.
package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/heraldrt/herald/compat"
	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/netpoll"
	"github.com/heraldrt/herald/protocols"
	"github.com/heraldrt/herald/telemetry"
)

// Server is one Herald node and its composition root: New builds the
// broker, the hub, the sessions' environment and the node's settings, and
// composes the three parts that serve from them — the HTTP routing of the
// main listener (router), the control plane between nodes (controlPlane)
// and the admin API (adminAPI). A message flows one way: publish → broker →
// deliver → hub → session → the session's writer.
type Server struct {
	// What New built and Shutdown closes.
	cfg     config.Config // the config the node started with (restart-only keys)
	log     *slog.Logger  // every line passes the redactor
	node    string        // random id of this node
	broker  fanout.Broker
	caps    brokerCaps // the broker's optional capabilities, resolved once by New
	hub     *Hub
	metrics *telemetry.Metrics
	tracing *telemetry.Tracing // nil when tracing is off
	// wrapCaps, set by tests only, wraps the broker's capabilities once
	// they are resolved (to slow a lease renewal down, to watch
	// preference reads).
	wrapCaps func(brokerCaps) brokerCaps
	ingest   *compat.Ingest  // channels_redis ingest, nil when disabled
	backend  *BackendChecker // auth.backend_check, nil when disabled

	// The parts New composes.
	routes  *router       // the main listener's HTTP layer
	control *controlPlane // cross-node requests over the control channels
	admin   *adminAPI     // /admin/* and the console

	// Settings in effect: the config and what derives from it; Reload
	// swaps them (reload.go).
	live liveConfig

	// Connections and their lifetime.
	upgrader websocket.FastHTTPUpgrader // the WebSocket handshake
	adm      *admission                 // node/IP/user limits
	prefs    preferences                // users' type filters cached on this node
	life     lifetime                   // session numbering, running sessions, shutdown
}

// Option adjusts how New builds a Server.
type Option func(*Server)

// WithTracing makes the node trace with tr instead of building a tracer
// from the tracing config (tests pass one with an in-memory recorder).
func WithTracing(tr *telemetry.Tracing) Option { return func(s *Server) { s.tracing = tr } }

// New builds a node from cfg: the broker named by fanout.broker, the
// verifier, the hub and the HTTP server. cfg must be validated.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts ...Option) (*Server, error) {
	log = redactLogger(log, newRedactor(cfg))
	s := &Server{cfg: cfg, log: log, node: strconv.FormatUint(rand.Uint64(), 36), life: lifetime{done: make(chan struct{})}}
	for _, o := range opts {
		o(s)
	}
	if s.tracing == nil {
		tr, err := telemetry.NewTracing(ctx, cfg.Tracing)
		if err != nil {
			return nil, err
		}
		s.tracing = tr
	}
	s.hub = NewHub(s.tracing)
	s.metrics = telemetry.NewMetrics()
	s.live.cfg.Store(&cfg)
	v, err := newVerifier(cfg, log)
	if err != nil {
		return nil, err
	}
	s.live.verif.Store(v)
	s.live.setRetention(cfg.History)
	b, caps, err := newBroker(ctx, cfg, s.deliver, s.live.retention)
	if err != nil {
		return nil, err
	}
	if s.wrapCaps != nil {
		caps = s.wrapCaps(caps)
	}
	s.broker, s.caps = b, caps
	s.prefs.durable = caps.prefs != nil
	s.control = newControlPlane(s.node, b, s, log)
	if caps.redis != nil {
		s.metrics.RegisterRedis(caps.redis)
	}
	if cfg.Compat.ChannelsRedis.Enabled {
		top := func(ctx context.Context, ch string) (fanout.Position, error) {
			res, err := b.History(ctx, ch, fanout.Position{}, 0)
			return res.Top, err
		}
		in, err := compat.NewIngest(cfg.Compat.ChannelsRedis, b.Publish, log.With("component", "channels_redis"), compat.WithTop(top))
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("compat.channels_redis: %w", err)
		}
		s.ingest = in
		s.metrics.RegisterChannelsRedis(func() map[string]uint64 {
			st := in.Stats()
			return map[string]uint64{
				"received": st.Received, "published": st.Published, "duplicate": st.Duplicates,
				"malformed": st.Malformed - st.InvalidUTF8, "invalid_utf8": st.InvalidUTF8,
				"skipped": st.Skipped, "expired": st.Expired, "dropped": st.Dropped,
			}
		})
		s.metrics.RegisterChannelsRedisRestores(func() uint64 { return in.Stats().Restored })
	}
	bc, err := NewBackendChecker(cfg.Auth.BackendCheck, log)
	if err != nil {
		s.closeIngest()
		b.Close()
		return nil, err
	}
	s.backend = bc
	s.adm = newAdmission(cfg.Limits, s.node, caps.conns, log)
	// Other nodes reach this one on its control channel (eviction of a
	// user's oldest connection, admin requests) and all nodes on the shared
	// one (admin broadcasts).
	if err := b.Subscribe(ctx, s.control.channels()...); err != nil {
		s.closeIngest()
		b.Close()
		return nil, fmt.Errorf("subscribe control channels: %w", err)
	}
	s.live.origins.Store(newOriginSet(cfg.Server.AllowedOrigins))
	var poller *netpoll.Poller
	if cfg.Server.Netpoll {
		p, err := netpoll.New()
		if err != nil {
			s.closeIngest()
			b.Close()
			return nil, fmt.Errorf("server.netpoll: %w", err)
		}
		poller = p
	}
	s.live.env.Store(&protocols.Env{
		Poller:  poller,
		Config:  streamConfig(cfg),
		Writers: protocols.NewWriters(cfg.Stream.Writers),
		Metrics: &protocols.Metrics{
			Delivered:     [2]protocols.Counter{s.metrics.Delivered[0], s.metrics.Delivered[1]},
			DeliveryTime:  [2]protocols.Observer{s.metrics.DeliveryTime[0], s.metrics.DeliveryTime[1]},
			Coalesced:     s.metrics.Coalesced,
			SlowConsumers: s.metrics.SlowConsumers,
			Replayed:      s.metrics.HistoryReplays,
			StreamReset:   func(reason string) { s.metrics.StreamResets.WithLabelValues(reason).Inc() },
		},
		History: s.broker,
		Log:     log,
		Refresh: func(token string, have []string) (string, time.Time, error) {
			c, err := s.live.verifier().Verify(token)
			if err != nil {
				return "", time.Time{}, err
			}
			// A refresh never widens a connection (channels the new token
			// adds come with a new connection); one that grants fewer
			// ends it, so the client reconnects with the narrower set.
			granted := channelsFor(c)
			if slices.Contains(have, fanout.UserChannel(c.UserID)) {
				for _, ch := range have {
					if !slices.Contains(granted, ch) {
						return "", time.Time{}, fmt.Errorf("%w: the new token does not grant %q", protocols.ErrChannelsRevoked, ch)
					}
				}
			}
			return c.UserID, c.ExpiresAt, nil
		},
	})
	s.upgrader = websocket.FastHTTPUpgrader{
		// The library does the handshake only: after it the session reads
		// frames (protocols/wsread.go) and writes everything itself, so
		// these buffers are never used for frames; keep them small.
		ReadBufferSize:  512,
		WriteBufferPool: &sync.Pool{},
		Subprotocols:    []string{envelopeSubprotocol},
		CheckOrigin:     func(*fasthttp.RequestCtx) bool { return true }, // checked before Upgrade
	}
	metrics := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}))
	s.admin = &adminAPI{key: cfg.Admin.Key, node: s.node, control: s.control, broker: b, hub: s.hub,
		publish: s, maxBody: cfg.API.MaxBodyBytes, metrics: metrics, log: log, timeout: cfg.Server.HandshakeTimeout}
	s.routes = &router{node: s, admin: s.admin, metrics: metrics, adminOnMain: cfg.Admin.Listen == "", dev: cfg.Dev.Enabled}
	s.routes.http = &fasthttp.Server{
		Handler:        s.routes.route,
		Name:           "herald",
		ReadBufferSize: cfg.Server.ReadBufferSize,
		ReadTimeout:    cfg.Server.HandshakeTimeout,
		IdleTimeout:    cfg.Server.HandshakeTimeout * 6,
		// Hijacked connections leave fasthttp's worker pool at once; after a
		// connect storm its idle workers (8 KiB stacks each) should not
		// linger for the default 10 s.
		MaxIdleWorkerDuration: 2 * time.Second,
		MaxRequestBodySize:    cfg.API.MaxBodyBytes,
		KeepHijackedConns:     true,
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		CloseOnShutdown:       true,
		ErrorHandler:          func(ctx *fasthttp.RequestCtx, err error) { httpError(log, ctx, err) },
		Logger:                slogPrintf{log},
		// fasthttp would quote the raw request head (API key, tokens,
		// cookies) in its parse errors; the redactor is the second line.
		SecureErrorLogMessage: true,
	}
	go s.housekeeping()
	return s, nil
}

// deliver is the broker's handler: messages on the control channels go to
// the control plane, on their own goroutine; every other message goes to
// the hub.
func (s *Server) deliver(m *fanout.Message) {
	if s.control.isControl(m.Channel) {
		go s.control.onMessage(m.Data)
		return
	}
	s.hub.Deliver(m)
}

// housekeeping runs periodic maintenance until Shutdown.
func (s *Server) housekeeping() {
	t := time.NewTicker(connLease / 3)
	defer t.Stop()
	go s.heartbeats()
	for {
		select {
		case <-s.life.done:
			return
		case now := <-t.C:
			s.adm.sweep(now)
			ctx, cancel := context.WithTimeout(context.Background(), connLease/3)
			s.adm.renew(ctx)
			cancel()
		}
	}
}

// heartbeats renews this node's liveness every heartbeatEvery, on its own
// goroutine: a lease renewal of thousands of users on a loaded Redis takes
// seconds, and a heartbeat waiting behind it would let the liveness key
// (fanout.NodeAliveTTL) lapse, so other nodes would stop counting this
// node's connections towards per-user limits. One failed heartbeat is
// harmless (the key outlives several); a warning is logged once none has
// succeeded for half the key's lifetime.
func (s *Server) heartbeats() {
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-s.life.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), fanout.NodeAliveTTL/2)
		err := s.adm.heartbeat(ctx)
		cancel()
		switch {
		case err == nil:
			last = time.Now()
		case time.Since(last) >= fanout.NodeAliveTTL/2:
			s.log.Warn("node heartbeat failing: other nodes may stop counting this node's connections",
				"since_last_ok", time.Since(last).Round(time.Millisecond).String(), "err", err)
		default:
			s.log.Info("node heartbeat failed; retrying", "err", err)
		}
	}
}

// newBroker builds the broker fanout.broker names from the sections it
// owns (fanout, history) and api.idempotency_window.
func newBroker(ctx context.Context, cfg config.Config, h fanout.Handler, retention fanout.Retention) (fanout.Broker, brokerCaps, error) {
	sec := fanout.Sections{Fanout: cfg.Fanout, History: cfg.History, IdempotencyWindow: cfg.API.IdempotencyWindow, Retention: retention}
	switch cfg.Fanout.Broker {
	case "memory":
		b := fanout.NewMemory(sec.Memory(), h)
		return b, memoryCaps(b), nil
	case "redis":
		b, err := fanout.NewRedis(ctx, sec.Redis(), h)
		if err != nil {
			return nil, brokerCaps{}, fmt.Errorf("fanout.redis: %w", err)
		}
		return b, redisCaps(b), nil
	default:
		return nil, brokerCaps{}, fmt.Errorf("fanout.broker: unknown broker %q", cfg.Fanout.Broker)
	}
}

func (s *Server) closeIngest() {
	if s.ingest != nil {
		_ = s.ingest.Close()
	}
}

// Ingest returns the channels_redis ingest, or nil when it is disabled.
func (s *Server) Ingest() *compat.Ingest { return s.ingest }

// Broker returns the node's broker.
func (s *Server) Broker() fanout.Broker { return s.broker }

// Metrics returns the node's metrics.
func (s *Server) Metrics() *telemetry.Metrics { return s.metrics }

// Hub returns the node's hub.
func (s *Server) Hub() *Hub { return s.hub }

// Serve accepts connections on ln until Shutdown. With server.tls set it
// serves https and wss on ln.
func (s *Server) Serve(ln net.Listener) error {
	if t := s.cfg.Server.TLS; t.CertFile != "" {
		tln, err := tlsListener(ln, t.CertFile, t.KeyFile, t.ReloadCheck)
		if err != nil {
			ln.Close()
			return err
		}
		ln = tln
	}
	err := s.routes.http.Serve(ln)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// Shutdown stops accepting connections, asks every client to reconnect
// (WebSocket close 1012, SSE retry hint and disconnect event) spread over
// server.reconnect_window, waits for the sessions to end, and closes the
// broker. ctx bounds the whole shutdown.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.life.draining.Swap(true) {
		return errors.New("shutdown: already shutting down")
	}
	close(s.life.done)
	httpDone := make(chan error, 1)
	go func() { httpDone <- s.routes.http.ShutdownWithContext(ctx) }()

	sessions := s.hub.Sessions()
	window := s.cfg.Server.ReconnectWindow
	for i, sess := range sessions {
		r := protocols.CloseShutdown
		if window > 0 {
			r.Retry = time.Duration(rand.Int64N(int64(window))) + 100*time.Millisecond
		}
		if window <= 0 || len(sessions) == 1 {
			sess.Close(r)
			continue
		}
		// Closing in a spread-out order spreads the WebSocket reconnects too.
		delay := time.Duration(int64(window) * int64(i) / int64(len(sessions)))
		time.AfterFunc(delay, func() { sess.Close(r) })
	}
	done := make(chan struct{})
	go func() { s.life.running.Wait(); close(done) }()
	var errs []error
	select {
	case <-done:
	case <-ctx.Done():
		for _, sess := range s.hub.Sessions() {
			sess.Close(protocols.CloseShutdown)
		}
		errs = append(errs, fmt.Errorf("shutdown: sessions still open: %w", ctx.Err()))
	}
	select {
	case err := <-httpDone:
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			errs = append(errs, fmt.Errorf("shutdown http: %w", err))
		}
	case <-ctx.Done():
	}
	// Leaves this node's group memberships; messages already read are
	// published before the broker closes.
	s.closeIngest()
	gctx, gcancel := context.WithTimeout(context.Background(), 2*time.Second)
	s.adm.gone(gctx)
	gcancel()
	if err := s.broker.Close(); err != nil {
		errs = append(errs, fmt.Errorf("shutdown broker: %w", err))
	}
	s.live.env.Load().Writers.Close()
	if p := s.live.env.Load().Poller; p != nil {
		if err := p.Close(); err != nil {
			errs = append(errs, fmt.Errorf("shutdown poller: %w", err))
		}
	}
	s.live.verifier().Close()
	s.admin.shutdown(ctx)
	if err := s.tracing.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shutdown tracing: %w", err))
	}
	return errors.Join(errs...)
}

// handleReady reports whether the broker is usable, per shard when the
// broker can tell.
func (s *Server) handleReady(ctx *fasthttp.RequestCtx) {
	out := map[string]any{"status": "ok", "broker": s.cfg.Fanout.Broker}
	status := fasthttp.StatusOK
	if s.life.draining.Load() {
		out["status"], status = "draining", fasthttp.StatusServiceUnavailable
	}
	if hc := s.caps.health; hc != nil {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := hc.Healthy(c)
		cancel()
		if err != nil {
			out["status"], out["error"], status = "unavailable", err.Error(), fasthttp.StatusServiceUnavailable
		}
	}
	if rb := s.caps.shards; rb != nil {
		out["shards"] = rb.ShardHealth()
	}
	writeJSON(ctx, status, out)
}

// slogPrintf adapts slog to fasthttp's Logger.
type slogPrintf struct{ l *slog.Logger }

// Printf logs one fasthttp message at warn level.
func (p slogPrintf) Printf(format string, args ...any) {
	p.l.Warn("fasthttp", "msg", fmt.Sprintf(format, args...))
}
