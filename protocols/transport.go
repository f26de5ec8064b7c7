package protocols

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/heraldrt/herald/fanout"
)

// Transport frames what a Session writes for one protocol. It appends wire
// bytes to a buffer; the Session owns the socket and writes the buffer in one
// call, so several queued messages leave in one syscall.
//
// Nothing above the Session knows about WebSocket or SSE, and nothing in a
// Transport knows about channels, queues or brokers.
type Transport interface {
	// Name is "ws" or "sse", for logs and metrics (Kind().String()).
	Name() string
	// Kind says which wire protocol the transport speaks.
	Kind() TransportKind
	// AppendMessage appends message m; cursor is the connection's cursor
	// after m.
	AppendMessage(dst []byte, m *fanout.Message, cursor []byte) []byte
	// AppendEvent appends a control event, a JSON object such as
	// {"type":"pong",...}; cursor, when non-nil, is the current cursor.
	AppendEvent(dst []byte, event []byte, cursor []byte) []byte
	// AppendKeepalive appends a keepalive (WebSocket ping, SSE comment).
	AppendKeepalive(dst []byte) []byte
	// AppendClose appends the last thing written before the connection is
	// closed for reason r.
	AppendClose(dst []byte, r CloseReason, cursor []byte) []byte
}

// TransportKind names a wire protocol. Its value is also the index of the
// per-transport arrays of Metrics: 0 is WebSocket, 1 is SSE.
type TransportKind uint8

// Transport kinds.
const (
	// KindWS is WebSocket.
	KindWS TransportKind = iota
	// KindSSE is Server-Sent Events.
	KindSSE
)

// String returns "ws" or "sse", the name used in logs, metric labels and
// connection_established.
func (k TransportKind) String() string {
	if k == KindSSE {
		return "sse"
	}
	return "ws"
}

// Slots of fanout.Message.Encoded used by the transports. Each is built once
// per message and shared by every connection that writes it.
const (
	slotWSRaw        = iota // complete WebSocket text frame of the payload
	slotWSEnvTail           // `","channel":"<ch>","data":<payload>}`
	slotSSEData             // "data: ..." lines and the blank line
	slotSSENamedData        // "event: <type>\n" + slotSSEData
	slotCoalesce            // coalescing key: type, NUL, raw key value (empty when none)
	slotType                // the payload's "type" (empty when none)
)

// ---- WebSocket ----

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

// ---- Server-Sent Events ----

// SSETransport frames Server-Sent Events.
type SSETransport struct {
	// Named sets the "event:" field from the payload's "type" member.
	// Without it every event is unnamed so EventSource.onmessage receives
	// everything.
	Named bool
}

// Name implements Transport.
func (SSETransport) Name() string { return KindSSE.String() }

// Kind returns KindSSE.
func (SSETransport) Kind() TransportKind { return KindSSE }

// appendSSEData appends payload p as "data:" lines (one per line of p, as
// the SSE grammar requires) and the blank line that ends the event.
func appendSSEData(dst, p []byte) []byte {
	for {
		i := bytes.IndexAny(p, "\r\n")
		dst = append(dst, "data: "...)
		if i < 0 {
			dst = append(dst, p...)
			break
		}
		dst = append(dst, p[:i]...)
		dst = append(dst, '\n')
		if p[i] == '\r' && i+1 < len(p) && p[i+1] == '\n' {
			i++
		}
		p = p[i+1:]
	}
	return append(dst, "\n\n"...)
}

func buildSSEData(m *fanout.Message) []byte { return appendSSEData(nil, m.Data) }

func buildSSENamed(m *fanout.Message) []byte {
	var b []byte
	if t := jsonType(m.Data); t != "" {
		b = append(b, "event: "...)
		b = append(b, t...)
		b = append(b, '\n')
	}
	return append(b, m.Encoded(slotSSEData, buildSSEData)...)
}

// AppendMessage implements Transport.
func (t SSETransport) AppendMessage(dst []byte, m *fanout.Message, cursor []byte) []byte {
	dst = append(dst, "id: "...)
	dst = append(dst, cursor...)
	dst = append(dst, '\n')
	if t.Named {
		return append(dst, m.Encoded(slotSSENamedData, buildSSENamed)...)
	}
	return append(dst, m.Encoded(slotSSEData, buildSSEData)...)
}

// AppendEvent implements Transport.
func (t SSETransport) AppendEvent(dst []byte, ev []byte, cursor []byte) []byte {
	if cursor != nil {
		dst = append(dst, "id: "...)
		dst = append(dst, cursor...)
		dst = append(dst, '\n')
	}
	if t.Named {
		if typ := jsonType(ev); typ != "" {
			dst = append(dst, "event: "...)
			dst = append(dst, typ...)
			dst = append(dst, '\n')
		}
	}
	return appendSSEData(dst, ev)
}

// AppendKeepalive implements Transport: a comment line, ignored by
// EventSource but enough to keep proxies and NATs from timing out.
func (SSETransport) AppendKeepalive(dst []byte) []byte { return append(dst, ":\n\n"...) }

// AppendClose implements Transport: a retry hint (spreading reconnects when
// the server asks for them) and a final event.
func (t SSETransport) AppendClose(dst []byte, r CloseReason, cursor []byte) []byte {
	if r.Retry > 0 {
		dst = append(dst, "retry: "...)
		dst = strconv.AppendInt(dst, r.Retry.Milliseconds(), 10)
		dst = append(dst, "\n\n"...)
	}
	if r.Event {
		dst = t.AppendEvent(dst, disconnectEvent(r), cursor)
	}
	return dst
}
