package protocols

import (
	"math/rand/v2"
	"net"
	"time"
)

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
	if s.tr.Kind() == KindWS {
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

// expiringAtLocked is when token_expiring is due (zero when not applicable).
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
	if s.tr.Kind() == KindWS || time.Since(time.Unix(0, last)) >= interval/2 {
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
