package protocols

import (
	"bufio"
	"net"
	"time"

	"github.com/heraldrt/herald/internal/netpoll"
)

// Parking (Env.Poller, server.netpoll): instead of a reader goroutine
// blocked in Read for each connection, the socket is watched by the
// node's epoll poller and read only when bytes arrive. An idle connection
// then holds no goroutine stack and no read buffer.
//
// The read side is the same code either way: a wake-up runs, in a
// goroutine of its own, the frames that arrived through the WebSocket
// reader (a frame that arrived in part is waited for there, bounded by the
// read deadline), then parks the connection again. Whoever ends the read
// side first — the wake-up that sees EOF or a protocol error, or
// terminate when Herald closes the socket, which a parked socket would
// never report — runs the end callback, once.

// parkState is the parked read side of a session.
type parkState struct {
	w     *netpoll.Waiter
	conn  net.Conn
	ended func()
	// wsr is the WebSocket reader; its buffer is dropped while parked.
	wsr *wsReader
	// readTimer closes a WebSocket that sent no frame for WSReadTimeout
	// (the read deadline of the goroutine mode); lastFrame is when the
	// last frame arrived (unix nanos), so frames need not reset it.
	readTimer *time.Timer
}

// wsReadBuffer is the WebSocket reader's buffer: client frames are pongs
// and small control messages.
const wsReadBuffer = 512

// Run serves the read side of an attached session until the connection
// ends, then calls ended (once). With Env.Poller set and a socket that
// can be parked (a plain TCP connection, not TLS) the connection holds no
// goroutine while idle; otherwise a goroutine reads it.
func (s *Session) Run(conn net.Conn, ended func()) {
	if s.env.Poller != nil && s.park(conn, ended) {
		return
	}
	go func() {
		if s.tr.Kind() == KindWS {
			s.ServeWS(conn)
		} else {
			s.ServeSSE(conn)
		}
		ended()
	}()
}

// park registers conn with the poller; false means it cannot be parked.
func (s *Session) park(conn net.Conn, ended func()) bool {
	sc, ok := conn.(netpoll.Conn)
	if !ok {
		return false
	}
	w, err := s.env.Poller.Register(sc, s.wake)
	if err != nil {
		return false
	}
	p := &parkState{w: w, conn: conn, ended: ended}
	ws := s.tr.Kind() == KindWS
	if ws {
		cfg := &s.env.Config
		p.wsr = newWSReader(nil, cfg.WSReadLimit, cfg.ClientRate, cfg.ClientBurst)
		p.wsr.r = nil // a buffer is taken on each wake-up
		s.lastFrame.Store(time.Now().UnixNano())
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		w.Remove()
		ended()
		return true
	}
	s.parked = p
	if ws {
		p.readTimer = time.AfterFunc(s.env.Config.WSReadTimeout, s.checkReadTimeout)
	}
	s.mu.Unlock()
	if err := w.Arm(); err != nil {
		s.terminate() // the socket is gone (or the node is stopping)
	}
	return true
}

// wake runs when a parked socket is readable or hung up.
func (s *Session) wake() {
	p := s.parkedState()
	if p == nil {
		return
	}
	if s.tr.Kind() == KindWS {
		if !s.readWS(p) {
			s.finish()
			s.endRead()
			return
		}
	} else {
		var b [16]byte
		_ = p.conn.SetReadDeadline(time.Now().Add(s.env.Config.WriteTimeout))
		n, err := p.conn.Read(b[:])
		if err != nil || n > 0 {
			if err == nil {
				s.Close(CloseProtocolError) // an EventSource sends nothing
			}
			s.finish()
			s.endRead()
			return
		}
	}
	if err := p.w.Arm(); err != nil {
		s.finish()
		s.endRead()
	}
}

// readWS reads the frames that arrived on a parked WebSocket and handles
// them; false means the read side is over.
func (s *Session) readWS(p *parkState) bool {
	r := p.wsr
	if r.r == nil {
		r.r = bufio.NewReaderSize(p.conn, wsReadBuffer)
	}
	for !s.isClosing() {
		_ = p.conn.SetReadDeadline(time.Now().Add(s.env.Config.WSReadTimeout))
		op, b, err := r.next()
		if err != nil {
			s.readError(err)
			return false
		}
		s.lastFrame.Store(time.Now().UnixNano())
		s.handleFrame(op, b)
		if r.r.Buffered() == 0 {
			// Park: what the reader keeps between wake-ups is its state,
			// not its buffer.
			r.r = nil
			return !s.isClosing()
		}
	}
	return false
}

// checkReadTimeout closes a parked WebSocket that sent no frame, not even
// a pong, for WSReadTimeout, like the read deadline does in goroutine
// mode.
func (s *Session) checkReadTimeout() {
	timeout := s.env.Config.WSReadTimeout
	left := timeout - time.Since(time.Unix(0, s.lastFrame.Load()))
	if left <= 0 {
		s.log.Debug("websocket read timeout", "session", s.opts.ID, "user", s.opts.UserID)
		s.Close(CloseGoingAway)
		return
	}
	s.mu.Lock()
	if !s.closed && !s.closing && s.parked != nil {
		s.parked.readTimer.Reset(left)
	}
	s.mu.Unlock()
}

func (s *Session) parkedState() *parkState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.parked
}

// endRead ends a parked read side once: the socket leaves the poller and
// the owner's end callback runs — in a goroutine of its own when terminate
// calls this (see endReadAsync).
func (s *Session) endRead() { s.endReadWith(false) }

// endReadAsync is endRead for terminate, which may run on a pooled writer
// after the final frame: the owner's cleanup (hub, broker unsubscribe,
// admission) must not hold up other sessions' writes.
func (s *Session) endReadAsync() { s.endReadWith(true) }

func (s *Session) endReadWith(async bool) {
	p := s.parkedState()
	if p == nil || !s.readEnded.CompareAndSwap(false, true) {
		return
	}
	p.w.Remove()
	if p.readTimer != nil {
		p.readTimer.Stop()
	}
	if async {
		go p.ended()
		return
	}
	p.ended()
}
