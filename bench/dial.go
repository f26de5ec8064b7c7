package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// Transport is a client connection's protocol.
type Transport uint8

// Transports.
const (
	WS Transport = iota
	SSE
)

// String returns "ws" or "sse".
func (t Transport) String() string {
	if t == SSE {
		return "sse"
	}
	return "ws"
}

// ipBindAddressNoPort is Linux's IP_BIND_ADDRESS_NO_PORT: binding a source
// address then picks the port at connect time, per destination, instead of
// searching the whole ephemeral range at bind time (which gets slow, and
// runs out, with tens of thousands of sockets on one source address).
const ipBindAddressNoPort = 24

// dialSpec says how to open one connection.
type dialSpec struct {
	transport Transport
	host      string // host:port of the server
	src       net.IP // source address, nil for the default
	token     string
	envelope  bool   // WebSocket envelope format (carries cursors)
	cursor    string // resume from this cursor (since= / Last-Event-ID)
	timeout   time.Duration
}

// errHandshake is an HTTP-level refusal of a connect.
type errHandshake struct {
	status int
	body   string
}

func (e *errHandshake) Error() string {
	return fmt.Sprintf("handshake refused: HTTP %d %s", e.status, strings.TrimSpace(e.body))
}

// reason is the refusal's machine-readable reason, the "error" field of
// Herald's JSON error body ("history_unavailable", "node_full", ...), or
// "" when the body is not one (the floor, a proxy's page).
func (e *errHandshake) reason() string {
	var body struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(e.body), &body) != nil || len(body.Error) > 64 {
		return ""
	}
	return body.Error
}

// dial opens a connection and reads the response head. The returned reader
// holds whatever followed the head; for an SSE stream with chunked
// transfer encoding it decodes the chunks.
func dial(ctx context.Context, d dialSpec) (net.Conn, *bufio.Reader, error) {
	nd := net.Dialer{Timeout: d.timeout}
	if d.src != nil {
		nd.LocalAddr = &net.TCPAddr{IP: d.src}
		nd.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	nc, err := nd.DialContext(ctx, "tcp", d.host)
	if err != nil {
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	_ = nc.SetDeadline(time.Now().Add(d.timeout))
	q := url.Values{"token": {d.token}}
	var req []byte
	var wsKey string
	switch d.transport {
	case WS:
		if d.envelope {
			q.Set("format", "envelope")
		}
		if d.cursor != "" {
			q.Set("since", d.cursor)
		}
		var k [16]byte
		_, _ = rand.Read(k[:])
		wsKey = base64.StdEncoding.EncodeToString(k[:])
		req = fmt.Appendf(nil, "GET /ws/notifications/?%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", q.Encode(), d.host, wsKey)
	case SSE:
		extra := ""
		if d.cursor != "" {
			extra = "Last-Event-ID: " + d.cursor + "\r\n"
		}
		req = fmt.Appendf(nil, "GET /sse/notifications/?%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n%s\r\n",
			q.Encode(), d.host, extra)
	}
	if _, err := nc.Write(req); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("handshake write: %w", err)
	}
	br := bufio.NewReaderSize(nc, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("handshake read: %w", err)
	}
	switch d.transport {
	case WS:
		if resp.StatusCode != http.StatusSwitchingProtocols {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			nc.Close()
			return nil, nil, &errHandshake{status: resp.StatusCode, body: string(body)}
		}
		if resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(wsKey) {
			nc.Close()
			return nil, nil, errors.New("handshake read: bad Sec-WebSocket-Accept")
		}
	case SSE:
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			nc.Close()
			return nil, nil, &errHandshake{status: resp.StatusCode, body: string(body)}
		}
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			nc.Close()
			return nil, nil, fmt.Errorf("handshake read: content type %q", resp.Header.Get("Content-Type"))
		}
		if len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked" {
			br = bufio.NewReaderSize(httputil.NewChunkedReader(br), 4096)
		}
	}
	_ = nc.SetDeadline(time.Time{})
	return nc, br, nil
}

func wsAccept(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// errorCause reduces an error to a short stable cause for grouping
// ("connect: connection refused", "handshake: HTTP 429", ...).
func errorCause(stage string, err error) string {
	var hs *errHandshake
	var ne net.Error
	switch {
	case err == nil:
		return stage + ": ok"
	case errors.As(err, &hs):
		if r := hs.reason(); r != "" {
			return fmt.Sprintf("%s: HTTP %d %s", stage, hs.status, r)
		}
		return fmt.Sprintf("%s: HTTP %d", stage, hs.status)
	case errors.Is(err, errClosedByServer):
		return stage + ": " + err.Error()
	case errors.Is(err, syscall.ECONNREFUSED):
		return stage + ": connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return stage + ": connection reset"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return stage + ": address not available (source ports exhausted)"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return stage + ": too many open files"
	case errors.Is(err, syscall.EPIPE):
		return stage + ": broken pipe"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return stage + ": timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return stage + ": closed by server (EOF)"
	case errors.Is(err, net.ErrClosed):
		return stage + ": closed locally"
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return stage + ": " + msg
}
