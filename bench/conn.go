package bench

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// errClosedByServer is wrapped by the error a read loop returns when the
// server sent a WebSocket close frame.
var errClosedByServer = errors.New("closed by server")

// closeFrameError is a WebSocket close frame received from the server.
type closeFrameError struct {
	code   uint16
	reason string
}

func (e *closeFrameError) Error() string {
	if e.reason != "" {
		return fmt.Sprintf("close %d %s", e.code, e.reason)
	}
	return fmt.Sprintf("close %d", e.code)
}

func (e *closeFrameError) Is(target error) bool { return target == errClosedByServer }

// maxFrame bounds a WebSocket frame the client accepts.
const maxFrame = 16 << 20

// clientConn is one benchmark connection. Its read goroutine owns the
// socket; trackers are guarded by mu because the fleet reads them.
type clientConn struct {
	idx  int
	spec dialSpec
	f    *Fleet

	// Read goroutine only:
	cursor     string        // last cursor seen
	target     int           // index of this session's reconnect target, -1: its own target
	retryHint  time.Duration // reconnect delay the server asked for
	discReason string        // reason of the server's disconnect event

	mu      sync.Mutex
	nc      net.Conn
	up      bool // established and not yet ended
	everUp  bool // established at least once
	dropped bool // the fleet closed it on purpose (resume/churn)
	bcast   SeqTracker
	user    SeqTracker
	// movedNS is when the connection was first established on a
	// reconnect target (unix ns, 0: not yet), movedTo which one.
	movedNS int64
	movedTo int
}

// run connects and reads until ctx ends. first receives the outcome of the
// initial connect (nil once the first message arrived). After the initial
// connect, a dropped connection is reconnected when the fleet asks for it.
func (c *clientConn) run(ctx context.Context, first chan<- error) {
	initial := true
	backoff := 50 * time.Millisecond
	for {
		est, err := c.session(ctx, initial, first)
		if ctx.Err() != nil || c.f.closing.Load() {
			return
		}
		if initial && !est {
			return
		}
		initial = false
		if est {
			backoff = 50 * time.Millisecond
			c.mu.Lock()
			dropped := c.dropped
			c.dropped = false
			c.mu.Unlock()
			if !dropped {
				c.f.addError(c.endCause(err))
				if !c.f.spec.ReconnectOnLoss {
					return
				}
			}
		} else {
			c.f.addError(errorCause("reconnect", err))
			backoff = min(2*backoff, 2*time.Second)
		}
		delay := backoff
		if d := c.f.spec.ReconnectDelay; d > 0 && est {
			delay = time.Duration(rand.Int64N(int64(d))) + time.Millisecond
		}
		if est && c.f.spec.HonorRetry && c.retryHint > 0 {
			delay = c.retryHint
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if !c.f.spec.Resume {
			c.cursor = ""
		}
		c.f.reconnects.Add(1)
	}
}

// endCause names why an established session ended. With reconnect targets
// (the storm scenario) the stage says whether the session was on the victim
// or on a survivor; the reason of the server's disconnect event, if one
// came, is added.
func (c *clientConn) endCause(err error) string {
	stage := "disconnect"
	if len(c.f.spec.ReconnectTargets) > 0 {
		stage = "victim disconnect"
		if c.target >= 0 {
			stage = "survivor disconnect"
		}
	}
	cause := errorCause(stage, err)
	if c.discReason != "" {
		cause += " (disconnect event: " + c.discReason + ")"
	}
	return cause
}

// session opens one socket and reads it until it ends. It reports whether
// the connection was established (its first message arrived).
func (c *clientConn) session(ctx context.Context, initial bool, first chan<- error) (bool, error) {
	t0 := time.Now()
	spec := c.spec
	c.retryHint, c.discReason, c.target = 0, "", -1
	if !initial {
		spec.host, c.target = c.f.reconnectHost(spec.host)
	}
	if c.f.spec.Resume {
		spec.cursor = c.cursor
	}
	nc, br, err := dial(ctx, spec)
	if err != nil {
		if initial {
			first <- err
		}
		return false, err
	}
	c.mu.Lock()
	if c.f.closing.Load() {
		c.mu.Unlock()
		nc.Close()
		if initial {
			first <- net.ErrClosed
		}
		return false, net.ErrClosed
	}
	c.nc = nc
	c.mu.Unlock()
	_ = nc.SetReadDeadline(t0.Add(spec.timeout))
	established := false
	onFirst := func() {
		established = true
		_ = nc.SetReadDeadline(time.Time{})
		c.mu.Lock()
		c.up, c.everUp = true, true
		if !initial && c.target >= 0 && c.movedNS == 0 {
			c.movedNS, c.movedTo = time.Now().UnixNano(), c.target
		}
		c.mu.Unlock()
		c.f.up[c.spec.transport].Add(1)
		c.f.connLat[c.spec.transport].Record(c.idx, time.Since(t0).Microseconds())
		if initial {
			first <- nil
		}
	}
	if spec.transport == WS {
		err = c.readWS(nc, br, onFirst)
	} else {
		err = c.readSSE(br, onFirst)
	}
	nc.Close()
	c.mu.Lock()
	c.nc = nil
	wasUp := c.up
	c.up = false
	c.mu.Unlock()
	if wasUp {
		c.f.up[c.spec.transport].Add(-1)
	}
	if !established && initial {
		first <- err
	}
	return established, err
}

// drop closes the socket on purpose; the read goroutine reconnects. It
// reports whether there was an established socket to drop.
func (c *clientConn) drop() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nc == nil || !c.up || c.dropped {
		return false
	}
	c.dropped = true
	c.nc.Close()
	return true
}

// closeNow closes the current socket, if any.
func (c *clientConn) closeNow() {
	c.mu.Lock()
	if c.nc != nil {
		c.nc.Close()
	}
	c.mu.Unlock()
}

// handle accounts one message; sseID is the SSE event id (nil on WS).
func (c *clientConn) handle(p []byte, sseID []byte) {
	now := time.Now().UnixNano()
	m := ParseMessage(p)
	if c.f.spec.Resume {
		if sseID != nil {
			c.cursor = string(sseID)
		} else if m.Cursor != nil {
			c.cursor = string(m.Cursor)
		}
	}
	var dup bool
	switch m.Kind {
	case KindBroadcast:
		c.mu.Lock()
		dup = c.bcast.Observe(m.Seq)
		c.mu.Unlock()
	case KindUser:
		c.mu.Lock()
		dup = c.user.Observe(m.Seq)
		c.mu.Unlock()
	default:
		if bytes.Contains(p, keyDisconnect) {
			c.noteDisconnect(p)
		}
		return
	}
	c.f.msgs.Add(1)
	if !dup {
		c.f.lat.Record(c.idx, (now-m.TS)/1000)
	}
}

var (
	keyDisconnect = []byte(`"type":"disconnect"`)
	keyReason     = []byte(`"reason":"`)
	keyRetryMS    = []byte(`"retry_ms":`)
)

// noteDisconnect remembers the reason and the retry hint of the server's
// final disconnect event.
func (c *clientConn) noteDisconnect(p []byte) {
	if i := bytes.Index(p, keyReason); i >= 0 {
		rest := p[i+len(keyReason):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 {
			c.discReason = string(rest[:j])
		}
	}
	if ms, ok := numberAfter(p, keyRetryMS); ok && ms > 0 {
		c.retryHint = time.Duration(ms) * time.Millisecond
	}
}

// readWS reads server frames until an error or a close frame, answering
// pings.
func (c *clientConn) readWS(nc net.Conn, br *bufio.Reader, onFirst func()) error {
	var frag []byte
	var hdr [8]byte
	first := true
	for {
		h0, err := br.ReadByte()
		if err != nil {
			return err
		}
		h1, err := br.ReadByte()
		if err != nil {
			return err
		}
		fin, op, masked := h0&0x80 != 0, h0&0x0f, h1&0x80 != 0
		n := uint64(h1 & 0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(br, hdr[:2]); err != nil {
				return err
			}
			n = uint64(binary.BigEndian.Uint16(hdr[:2]))
		case 127:
			if _, err := io.ReadFull(br, hdr[:8]); err != nil {
				return err
			}
			n = binary.BigEndian.Uint64(hdr[:8])
		}
		var mask [4]byte
		if masked {
			if _, err := io.ReadFull(br, mask[:]); err != nil {
				return err
			}
		}
		if n > maxFrame {
			return fmt.Errorf("frame of %d bytes", n)
		}
		var p []byte
		peeked := int(n) <= br.Size()
		if peeked {
			if p, err = br.Peek(int(n)); err != nil {
				return err
			}
		} else {
			p = make([]byte, n)
			if _, err := io.ReadFull(br, p); err != nil {
				return err
			}
		}
		if masked {
			for i := range p {
				p[i] ^= mask[i%4]
			}
		}
		switch op {
		case 0x0, 0x1, 0x2:
			if !fin || len(frag) > 0 {
				frag = append(frag, p...)
				if fin {
					c.handle(frag, nil)
					frag = frag[:0]
				}
			} else {
				c.handle(p, nil)
			}
			if fin && first {
				first = false
				onFirst()
			}
		case 0x8:
			ce := &closeFrameError{}
			if len(p) >= 2 {
				ce.code = binary.BigEndian.Uint16(p)
				ce.reason = string(p[2:])
			}
			return ce
		case 0x9:
			if err := writePong(nc, p); err != nil {
				return err
			}
		}
		if peeked {
			_, _ = br.Discard(int(n))
		}
	}
}

// writePong sends a masked pong frame echoing payload (at most 125 bytes).
func writePong(nc net.Conn, payload []byte) error {
	if len(payload) > 125 {
		payload = payload[:125]
	}
	f := make([]byte, 0, 6+len(payload))
	f = append(f, 0x8A, 0x80|byte(len(payload)))
	var mask [4]byte
	_, _ = crand.Read(mask[:])
	f = append(f, mask[:]...)
	for i, b := range payload {
		f = append(f, b^mask[i%4])
	}
	_ = nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := nc.Write(f)
	return err
}

// readSSE parses an event stream until an error.
func (c *clientConn) readSSE(br *bufio.Reader, onFirst func()) error {
	var data, id []byte
	hasData, hasID, first := false, false, true
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil {
			return err
		}
		line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
		switch {
		case len(line) == 0:
			if hasData {
				var sid []byte
				if hasID {
					sid = id
				}
				c.handle(data, sid)
				if first {
					first = false
					onFirst()
				}
			}
			data, hasData = data[:0], false
		case line[0] == ':':
		case bytes.HasPrefix(line, []byte("data:")):
			v := bytes.TrimPrefix(line[5:], []byte(" "))
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, v...)
			hasData = true
		case bytes.HasPrefix(line, []byte("id:")):
			id = append(id[:0], bytes.TrimPrefix(line[3:], []byte(" "))...)
			hasID = true
		}
	}
}
