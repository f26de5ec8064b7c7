package protocols

import (
	"errors"
	"io"
	"time"

	"github.com/fasthttp/websocket"
)

// ServeWS runs the read loop of a WebSocket session on c until the
// connection ends, answering pings, refresh requests and malformed input.
// The session must be attached to c's underlying connection. All writes go
// through the session, so frames from the writer pool and replies from
// this loop never interleave.
func (s *Session) ServeWS(c *websocket.Conn) {
	cfg := &s.env.Config
	c.SetReadLimit(cfg.WSReadLimit)
	deadline := func() { _ = c.SetReadDeadline(time.Now().Add(cfg.WSReadTimeout)) }
	c.SetPingHandler(func(data string) error {
		deadline()
		s.enqueue(item{kind: itemRaw, b: appendFrame(nil, opPong, []byte(data))})
		return nil
	})
	c.SetPongHandler(func(string) error { deadline(); return nil })
	c.SetCloseHandler(func(code int, _ string) error {
		// Echo the client's close and end the connection (RFC 6455 5.5.1).
		if code == websocket.CloseNoStatusReceived {
			code = websocket.CloseNormalClosure
		}
		s.Close(CloseReason{WSCode: uint16(code)})
		return nil
	})
	for {
		deadline()
		mt, r, err := c.NextReader()
		if err != nil {
			s.readError(err)
			break
		}
		if mt != websocket.TextMessage {
			s.Close(CloseUnsupportedData)
			break
		}
		data, err := io.ReadAll(r)
		if err != nil {
			s.readError(err)
			break
		}
		s.Touch()
		msg, action, reply := ParseInbound(data)
		switch action {
		case ActionReply:
			s.SendEvent(reply)
		case ActionRefresh:
			s.SendEvent(s.refresh(msg.Token))
		case ActionClose:
			s.Close(CloseInvalidPayload)
		}
	}
	// Let the writer send a pending close frame before the socket goes.
	s.finish()
}

func (s *Session) readError(err error) {
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		// The library has already sent close 1009.
		s.mu.Lock()
		s.reason = CloseTooBig
		s.mu.Unlock()
		s.terminate()
	case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived):
	default:
		if s.env.Log != nil {
			s.env.Log.Debug("websocket read ended", "session", s.opts.ID, "user", s.opts.UserID, "err", err)
		}
	}
}

// refresh verifies a replacement token and extends the session's expiry.
func (s *Session) refresh(token string) []byte {
	if s.env.Refresh == nil {
		return ErrorEvent("token refresh is not enabled")
	}
	user, exp, err := s.env.Refresh(token)
	if err != nil {
		return ErrorEvent("refresh rejected: " + err.Error())
	}
	if user != s.opts.UserID {
		return ErrorEvent("refresh rejected: token is for another user")
	}
	s.mu.Lock()
	if !s.closing && !s.closed {
		s.setExpiryLocked(exp)
	}
	s.mu.Unlock()
	return RefreshedEvent(exp)
}
