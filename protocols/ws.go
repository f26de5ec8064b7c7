package protocols

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/heraldrt/herald/fanout"
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
		s.handleFrame(op, p)
	}
	// Let the writer send a pending close frame before the socket goes.
	s.finish()
}

// handleFrame acts on one client frame: a ping is answered, a close
// echoed, a text message parsed as an inbound request.
func (s *Session) handleFrame(op byte, p []byte) {
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

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// appendFrameHeader appends an unmasked server frame header (FIN set).
func appendFrameHeader(dst []byte, op byte, n int) []byte {
	dst = append(dst, 0x80|op)
	switch {
	case n <= 125:
		dst = append(dst, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return dst
}

// appendFrame appends a complete unmasked frame with payload p.
func appendFrame(dst []byte, op byte, p []byte) []byte {
	return append(appendFrameHeader(dst, op, len(p)), p...)
}

// WSFormat selects what WebSocket data frames carry.
type WSFormat uint8

const (
	// WSRaw sends each payload byte for byte as published, and control
	// events as bare JSON objects: the format of the Django Channels guide.
	WSRaw WSFormat = iota
	// WSEnvelope wraps each payload as {"cursor","channel","data"} so
	// clients can resume, and adds "cursor" to control events.
	WSEnvelope
)

// WSTransport frames WebSocket messages.
type WSTransport struct{ Format WSFormat }

// Name implements Transport.
func (WSTransport) Name() string { return KindWS.String() }

// Kind returns KindWS.
func (WSTransport) Kind() TransportKind { return KindWS }

func buildWSRaw(m *fanout.Message) []byte { return appendFrame(nil, opText, m.Data) }

func buildWSEnvTail(m *fanout.Message) []byte {
	b := make([]byte, 0, len(m.Channel)+len(m.Data)+24)
	b = append(b, `","channel":"`...)
	b = append(b, m.Channel...)
	b = append(b, `","data":`...)
	b = append(b, m.Data...)
	return append(b, '}')
}

const envHead = `{"cursor":"`

// AppendMessage implements Transport.
func (t WSTransport) AppendMessage(dst []byte, m *fanout.Message, cursor []byte) []byte {
	if t.Format == WSRaw {
		return append(dst, m.Encoded(slotWSRaw, buildWSRaw)...)
	}
	tail := m.Encoded(slotWSEnvTail, buildWSEnvTail)
	dst = appendFrameHeader(dst, opText, len(envHead)+len(cursor)+len(tail))
	dst = append(dst, envHead...)
	dst = append(dst, cursor...)
	return append(dst, tail...)
}

// AppendEvent implements Transport.
func (t WSTransport) AppendEvent(dst []byte, ev []byte, cursor []byte) []byte {
	if t.Format == WSRaw || cursor == nil {
		return appendFrame(dst, opText, ev)
	}
	n := len(ev) - 1 + len(`,"cursor":"`) + len(cursor) + 2
	dst = appendFrameHeader(dst, opText, n)
	return appendWithCursor(dst, ev, cursor)
}

// appendWithCursor appends JSON object ev with a "cursor" member added.
func appendWithCursor(dst, ev, cursor []byte) []byte {
	dst = append(dst, ev[:len(ev)-1]...)
	dst = append(dst, `,"cursor":"`...)
	dst = append(dst, cursor...)
	return append(dst, `"}`...)
}

// AppendKeepalive implements Transport: a ping frame the client answers
// with a pong, which refreshes the read deadline.
func (WSTransport) AppendKeepalive(dst []byte) []byte { return appendFrame(dst, opPing, nil) }

// AppendClose implements Transport: a final event the client can read, then
// a close frame with the reason's code.
func (t WSTransport) AppendClose(dst []byte, r CloseReason, cursor []byte) []byte {
	if r.Event {
		dst = t.AppendEvent(dst, disconnectEvent(r), cursor)
	}
	reason := closeText(r.Reason)
	dst = appendFrameHeader(dst, opClose, 2+len(reason))
	dst = binary.BigEndian.AppendUint16(dst, r.WSCode)
	return append(dst, reason...)
}

// maxCloseText is the longest close reason: a control frame payload is at
// most 125 bytes, two of which are the code.
const maxCloseText = 123

// closeText returns reason as a valid close frame reason: valid UTF-8 (RFC
// 6455 7.1.6; clients fail the connection otherwise) cut to at most 123
// bytes at a character boundary.
func closeText(reason string) string {
	if !utf8.ValidString(reason) {
		reason = strings.ToValidUTF8(reason, "\uFFFD")
	}
	if len(reason) <= maxCloseText {
		return reason
	}
	n := maxCloseText
	for n > 0 && !utf8.RuneStart(reason[n]) {
		n-- // reason[n] continues the character that starts before it
	}
	return reason[:n]
}
