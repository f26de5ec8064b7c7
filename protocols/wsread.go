package protocols

import (
	"bufio"
	"encoding/binary"
	"io"
	"time"
	"unicode/utf8"
)

// wsReader reads a client's WebSocket frames (RFC 6455 section 5) with
// Herald's limits. It never writes: replies and close frames go through the
// session's queue and writer, so the session is the only writer of the
// socket (a library reader would write its own close frame on a protocol
// error, racing the writer pool's flushes).
//
// It returns whole data messages (fragments reassembled) and control
// frames as they arrive; anything else ends the connection with the
// CloseReason of a wsProtocolError.
type wsReader struct {
	r     *bufio.Reader
	limit int64
	// msg assembles the current data message; fragmented tells that a
	// message is open (its first frame had FIN clear).
	msg        []byte
	fragmented bool
	hdr        [8]byte
	mask       [4]byte
	ctl        [125]byte

	// Token bucket of limits.client_rate: every frame costs one token.
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

// wsProtocolError is a client frame Herald refuses: the connection closes
// with reason, detail says why (for the log).
type wsProtocolError struct {
	reason CloseReason
	detail string
}

func (e *wsProtocolError) Error() string { return "websocket: " + e.detail }

func protoErr(r CloseReason, detail string) error { return &wsProtocolError{reason: r, detail: detail} }

// maxKeptMessageBuffer: a message buffer larger than this is not kept for
// the next message, so an idle connection holds no burst's buffer.
const maxKeptMessageBuffer = 4 << 10

func newWSReader(r io.Reader, limit int64, rate float64, burst int) *wsReader {
	if burst < 1 {
		burst = 1
	}
	return &wsReader{r: bufio.NewReaderSize(r, 512), limit: limit, rate: rate, burst: float64(burst), tokens: float64(burst)}
}

// allow takes one token from the rate bucket.
func (w *wsReader) allow() bool {
	if w.rate <= 0 {
		return true
	}
	now := time.Now()
	if !w.last.IsZero() {
		w.tokens = min(w.burst, w.tokens+now.Sub(w.last).Seconds()*w.rate)
	}
	w.last = now
	if w.tokens < 1 {
		return false
	}
	w.tokens--
	return true
}

// next returns the next data message (op is opText) or control frame. The
// payload is valid until the next call. Errors are the socket's (the client
// went away, the read deadline passed) or a *wsProtocolError.
func (w *wsReader) next() (op byte, payload []byte, err error) {
	if !w.fragmented && cap(w.msg) > maxKeptMessageBuffer {
		w.msg = nil
	}
	for {
		h := w.hdr[:2]
		if _, err := io.ReadFull(w.r, h); err != nil {
			return 0, nil, err
		}
		if !w.allow() {
			return 0, nil, protoErr(CloseRateLimited, "more frames than limits.client_rate allows")
		}
		fin, rsv, op := h[0]&0x80 != 0, h[0]&0x70, h[0]&0x0f
		masked, n := h[1]&0x80 != 0, uint64(h[1]&0x7f)
		if rsv != 0 {
			return 0, nil, protoErr(CloseProtocolError, "reserved bits set (no extension was negotiated)")
		}
		if !masked {
			return 0, nil, protoErr(CloseProtocolError, "unmasked client frame")
		}
		control := op&0x8 != 0
		switch {
		case op == opClose || op == opPing || op == opPong:
			if !fin {
				return 0, nil, protoErr(CloseProtocolError, "fragmented control frame")
			}
			if n > 125 {
				return 0, nil, protoErr(CloseProtocolError, "control frame longer than 125 bytes")
			}
		case op == opBinary:
			return 0, nil, protoErr(CloseUnsupportedData, "binary frame")
		case op == opText:
			if w.fragmented {
				return 0, nil, protoErr(CloseProtocolError, "new message inside a fragmented one")
			}
		case op == opContinuation:
			if !w.fragmented {
				return 0, nil, protoErr(CloseProtocolError, "continuation frame without a message")
			}
		default:
			return 0, nil, protoErr(CloseProtocolError, "reserved opcode")
		}
		switch n {
		case 126:
			if _, err := io.ReadFull(w.r, w.hdr[:2]); err != nil {
				return 0, nil, unexpected(err)
			}
			n = uint64(binary.BigEndian.Uint16(w.hdr[:2]))
		case 127:
			if _, err := io.ReadFull(w.r, w.hdr[:8]); err != nil {
				return 0, nil, unexpected(err)
			}
			n = binary.BigEndian.Uint64(w.hdr[:8])
			if n>>63 != 0 {
				return 0, nil, protoErr(CloseProtocolError, "frame length has the most significant bit set")
			}
		}
		if !control && n > uint64(w.limit)-uint64(len(w.msg)) {
			return 0, nil, protoErr(CloseTooBig, "message larger than stream.ws_read_limit")
		}
		mask := w.mask[:] // in the struct: a local array would escape into ReadFull
		if _, err := io.ReadFull(w.r, mask); err != nil {
			return 0, nil, unexpected(err)
		}
		var p []byte
		if control {
			p = w.ctl[:n]
		} else {
			start := len(w.msg)
			if need := start + int(n); need > cap(w.msg) {
				grown := make([]byte, start, max(need, min(2*cap(w.msg), int(w.limit))))
				copy(grown, w.msg)
				w.msg = grown
			}
			w.msg = w.msg[:start+int(n)]
			p = w.msg[start:]
		}
		if _, err := io.ReadFull(w.r, p); err != nil {
			return 0, nil, unexpected(err)
		}
		for i := range p {
			p[i] ^= mask[i&3]
		}
		if control {
			return op, p, nil
		}
		if !fin {
			w.fragmented = true
			continue
		}
		w.fragmented = false
		msg := w.msg
		w.msg = w.msg[:0]
		return opText, msg, nil
	}
}

// unexpected turns an EOF inside a frame into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// clientClose decides the answer to a client's close frame payload: its
// code echoed (1000 when it sent none), or a protocol error for a payload
// RFC 6455 forbids (section 7.4: codes a peer may not send; section 5.5.1:
// a reason that is not UTF-8).
func clientClose(p []byte) (CloseReason, error) {
	switch {
	case len(p) == 0:
		return CloseReason{WSCode: 1000}, nil
	case len(p) == 1:
		return CloseReason{}, protoErr(CloseProtocolError, "close frame with a 1-byte payload")
	}
	code := binary.BigEndian.Uint16(p)
	if !validReceivedCloseCode(code) {
		return CloseReason{}, protoErr(CloseProtocolError, "close code a client may not send")
	}
	if !utf8.Valid(p[2:]) {
		return CloseReason{}, protoErr(CloseInvalidPayload, "close reason is not UTF-8")
	}
	return CloseReason{WSCode: code}, nil
}

// validReceivedCloseCode: the registered codes an endpoint may send
// (1004-1006 and 1015 are reserved) and the 3000-4999 application range.
func validReceivedCloseCode(c uint16) bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1014:
		return true
	case c >= 3000 && c <= 4999:
		return true
	}
	return false
}
