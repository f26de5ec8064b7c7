package protocols

import (
	"errors"
	"net"
	"os"
	"time"
)

// ServeWS runs the read loop of a WebSocket session on conn, the socket
// the session is attached to (after the upgrade), until the connection
// ends, answering pings, refresh requests and malformed input.
//
// The WebSocket library serves only for the handshake: ServeWS reads
// frames itself (see wsReader), enforcing the read limit, the client rate
// and the protocol, so that every byte written to the socket — replies,
// pongs and close frames included — goes through the session's bounded
// queue and its one writer.
func (s *Session) ServeWS(conn net.Conn) {
	cfg := &s.env.Config
	r := newWSReader(conn, cfg.WSReadLimit, cfg.ClientRate, cfg.ClientBurst)
	for !s.isClosing() {
		// Any frame, a pong included, proves the client alive; a frame
		// must also arrive whole within the read timeout.
		_ = conn.SetReadDeadline(time.Now().Add(cfg.WSReadTimeout))
		op, p, err := r.next()
		if err != nil {
			s.readError(err)
			break
		}
		switch op {
		case opPing:
			s.reply(item{kind: itemRaw, b: appendFrame(nil, opPong, p)})
		case opPong:
		case opClose:
			// Echo the client's close and end the connection (RFC 6455
			// 5.5.1), unless the close frame itself is malformed.
			reason, err := clientClose(p)
			if err != nil {
				s.readError(err)
			} else {
				s.Close(reason)
			}
		case opText:
			s.Touch()
			msg, action, reply := ParseInbound(p)
			switch action {
			case ActionReply:
				s.reply(item{kind: itemEvent, b: reply})
			case ActionRefresh:
				if reply := s.refresh(msg.Token); reply != nil {
					s.reply(item{kind: itemEvent, b: reply})
				}
			case ActionClose:
				s.readError(protoErr(CloseInvalidPayload, "text message is not UTF-8"))
			}
		}
	}
	// Let the writer send a pending close frame before the socket goes.
	s.finish()
}

// readError ends the connection for a read error: a refused frame closes
// with its code, a silent client (read deadline) with 1001; otherwise the
// client is gone and there is nobody to tell.
func (s *Session) readError(err error) {
	var pe *wsProtocolError
	switch {
	case errors.As(err, &pe):
		s.log.Info("websocket input refused", "session", s.opts.ID, "user", s.opts.UserID,
			"code", pe.reason.WSCode, "reason", pe.reason.Reason, "detail", pe.detail)
		s.Close(pe.reason)
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.log.Debug("websocket read timeout", "session", s.opts.ID, "user", s.opts.UserID)
		s.Close(CloseGoingAway)
	default:
		s.log.Debug("websocket read ended", "session", s.opts.ID, "user", s.opts.UserID, "err", err)
	}
}

// refresh verifies a replacement token and extends the session's expiry.
func (s *Session) refresh(token string) []byte {
	if s.env.Refresh == nil {
		return ErrorEvent("token refresh is not enabled")
	}
	user, exp, err := s.env.Refresh(token, s.Channels())
	if errors.Is(err, ErrChannelsRevoked) {
		s.reply(item{kind: itemEvent, b: ErrorEvent("refresh rejected: " + err.Error())})
		s.Close(CloseChannelsRevoked)
		return nil
	}
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
