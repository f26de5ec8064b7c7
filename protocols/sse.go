package protocols

import (
	"bytes"
	"io"
	"strconv"
	"time"

	"github.com/heraldrt/herald/fanout"
)

// AppendSSEHead appends the HTTP/1.1 response head of an event stream and
// the initial retry hint. Herald writes it itself on the hijacked
// connection, so an SSE stream is a plain socket like a WebSocket and costs
// no server worker, pipe or chunked encoder.
func AppendSSEHead(dst []byte, retry time.Duration, extraHeaders [][2]string) []byte {
	dst = append(dst, "HTTP/1.1 200 OK\r\n"+
		"Content-Type: text/event-stream; charset=utf-8\r\n"+
		"Cache-Control: no-cache, no-store\r\n"+
		"Connection: keep-alive\r\n"+
		"X-Accel-Buffering: no\r\n"...)
	for _, h := range extraHeaders {
		dst = append(dst, h[0]...)
		dst = append(dst, ": "...)
		dst = append(dst, h[1]...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "\r\nretry: "...)
	dst = strconv.AppendInt(dst, retry.Milliseconds(), 10)
	return append(dst, "\n\n"...)
}

// ServeSSE runs the read side of an SSE session until the client goes away.
// An EventSource sends nothing after its request, so the only thing to
// learn from the socket is that it closed; a client that sends data anyway
// is disconnected.
func (s *Session) ServeSSE(r io.Reader) {
	var b [16]byte
	for {
		n, err := r.Read(b[:])
		if err != nil {
			break
		}
		if n > 0 {
			s.Close(CloseProtocolError)
			break
		}
	}
	s.finish()
}

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
