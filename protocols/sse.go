package protocols

import (
	"io"
	"strconv"
	"time"
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
