package protocols

import "github.com/heraldrt/herald/fanout"

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
