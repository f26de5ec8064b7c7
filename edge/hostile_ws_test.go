package edge

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/config"
)

// TestAdminDisconnectLongReason: an admin disconnect whose reason is 140
// bytes of multi-byte characters still ends in a valid close frame: the
// strict client (fasthttp/websocket fails a close frame whose reason is not
// UTF-8) reads code 4403 and a reason cut at a character boundary.
func TestAdminDisconnectLongReason(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Admin.Key = testAdminKey })
	c := ts.mustWS(t, q("token", token(t, "lr", time.Hour)))
	readWS(t, c)
	reason := strings.Repeat("é", 70) // 140 bytes; byte 123 is inside a character
	if code, out := adminDo(t, ts, "POST", "/admin/disconnect", testAdminKey, `{"user_id":"lr","reason":"`+reason+`"}`); code != 200 {
		t.Fatalf("disconnect: %d %v", code, out)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue // the disconnect event
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("want close 4403, got %v", err)
		}
		if ce.Code != 4403 || !utf8.ValidString(ce.Text) || len(ce.Text) > 123 || !strings.HasPrefix(reason, ce.Text) || len(ce.Text) < 120 {
			t.Fatalf("close %d %q (%d bytes), want 4403 and the reason cut to <= 123 bytes", ce.Code, ce.Text, len(ce.Text))
		}
		return
	}
}

// ---- The WebSocket-frames hostile-input suite ----
//
// Each case opens one real WebSocket (raw TCP, the handshake written by
// hand so any byte can follow), sends what a hostile or broken client
// would, and states the bound Herald must hold: the close code the client
// reads (when it reads), how soon the connection is closed, and how much
// the server's heap may grow meanwhile (sampled after a forced GC, so it is
// live memory; client and server share this process, and the client
// writes from one preallocated buffer).

// rawWS is a client socket past the WebSocket handshake.
type rawWS struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialRawWS performs the opening handshake by hand.
func dialRawWS(t *testing.T, ts *testServer, user string) *rawWS {
	t.Helper()
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := "GET /ws/notifications/?" + q("token", token(t, user, time.Hour)) + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	status, _ := r.ReadString('\n')
	if !strings.Contains(status, " 101 ") {
		t.Fatalf("handshake: %q", status)
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if line == "\r\n" {
			break
		}
	}
	_ = conn.SetDeadline(time.Time{})
	return &rawWS{conn: conn, r: r}
}

// frame builds a client frame: first is FIN|RSV|opcode as sent, payload
// is masked with a fixed key unless unmasked.
func frame(first byte, payload []byte, unmasked bool) []byte {
	b := []byte{first}
	maskBit := byte(0x80)
	if unmasked {
		maskBit = 0
	}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, maskBit|byte(n))
	case n <= 0xFFFF:
		b = append(b, maskBit|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, maskBit|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if unmasked {
		return append(b, payload...)
	}
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

// serverFrame is one frame read from Herald.
type serverFrame struct {
	op      byte
	payload []byte
}

// next reads one server frame; server frames must be final, unmasked and
// without reserved bits.
func (c *rawWS) next() (serverFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return serverFrame{}, err
	}
	if h[0]&0xF0 != 0x80 || h[1]&0x80 != 0 {
		return serverFrame{}, fmt.Errorf("bad server frame header % x", h)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return serverFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return serverFrame{}, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<20 {
		return serverFrame{}, fmt.Errorf("server frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.r, p); err != nil {
		return serverFrame{}, err
	}
	return serverFrame{op: h[0] & 0x0f, payload: p}, nil
}

// closeCode reads until Herald's close frame and returns its code and
// reason; pings and events before it are skipped. A strict check: the
// reason must be UTF-8 and the frame at most 125 bytes.
func (c *rawWS) closeCode(t *testing.T, within time.Duration) (int, string) {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(within))
	for {
		f, err := c.next()
		if err != nil {
			t.Fatalf("no close frame: %v", err)
		}
		if f.op != 0x8 {
			continue
		}
		if len(f.payload) < 2 || len(f.payload) > 125 || !utf8.Valid(f.payload[2:]) {
			t.Fatalf("malformed close frame %q", f.payload)
		}
		return int(binary.BigEndian.Uint16(f.payload)), string(f.payload[2:])
	}
}

// heapSampler records the peak live heap above a baseline.
type heapSampler struct {
	base uint64
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{base: liveHeap(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for {
			if cur := liveHeap(); cur > h.base && cur-h.base > h.peak.Load() {
				h.peak.Store(cur - h.base)
			}
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

// growth stops sampling and returns the peak growth.
func (h *heapSampler) growth() uint64 {
	close(h.stop)
	<-h.done
	return h.peak.Load()
}

// floodUntilClosed writes buf over and over without reading until the
// server closes the connection (a write fails) or within passes; it
// returns how long that took.
func floodUntilClosed(t *testing.T, c *rawWS, buf []byte, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.conn.SetWriteDeadline(start.Add(within))
	for {
		if _, err := c.conn.Write(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the flood was not stopped within %v", within)
			}
			return time.Since(start)
		}
	}
}

const mib = 1 << 20

func TestHostileWebSocketFrames(t *testing.T) {
	ping125 := frame(0x89, bytes.Repeat([]byte("p"), 125), false)
	textPing := frame(0x81, []byte(`{"type":"ping","timestamp":"`+strings.Repeat("t", 90)+`"}`), false)
	repeat := func(f []byte, n int) []byte { return bytes.Repeat(f, n) }
	// Without a rate limit, with a 3 s write timeout (the old code grew its
	// queue until the write timeout dropped the connection) and a 1 MiB
	// queue.
	noRate := func(c *config.Config) {
		c.Limits.ClientRate, c.Stream.WriteTimeout, c.Stream.MaxQueueBytes = 0, 3*time.Second, mib
	}
	cases := []struct {
		name   string
		config func(*config.Config)
		// send is written once (readsReply) or over and over (flood).
		send  []byte
		flood bool
		// wantCode is the close code the client must read (0: the client
		// does not read; only the close itself is checked).
		wantCode int
		// within bounds the time to the close; maxHeap the server's live
		// heap growth meanwhile.
		within  time.Duration
		maxHeap uint64
	}{
		// Floods of requests from a client that never reads: replies go
		// through the bounded queue, so the connection is dropped as a
		// slow consumer having cost at most stream.max_queue_bytes (1 MiB
		// here) plus a constant: 3 MiB for the queue's items and the
		// connection's buffers (before: 33 MB -> 1.5 GB RSS in 11 s).
		{name: "ping frame flood, no reading, rate limit off", config: noRate, send: repeat(ping125, 512), flood: true,
			within: 15 * time.Second, maxHeap: mib + 3*mib},
		{name: "JSON ping flood, no reading, rate limit off", config: noRate, send: repeat(textPing, 512), flood: true,
			within: 15 * time.Second, maxHeap: mib + 3*mib},
		// With limits.client_rate (default 20/s, burst 50) the same flood
		// ends after 51 frames.
		{name: "ping frame flood, default rate limit", send: repeat(ping125, 200), wantCode: 4429, within: 5 * time.Second, maxHeap: 2 * mib},
		{name: "JSON ping flood, default rate limit", send: repeat(textPing, 200), wantCode: 4429, within: 5 * time.Second, maxHeap: 2 * mib},
		{name: "empty continuation flood", send: append(frame(0x01, []byte("{"), false), repeat(frame(0x00, nil, false), 200)...),
			wantCode: 4429, within: 5 * time.Second, maxHeap: 2 * mib},
		// A declared length over ws_read_limit is refused from the header:
		// nothing of the payload is buffered.
		{name: "oversize frame header", send: frame(0x81, make([]byte, 1<<20), false)[:14], wantCode: 1009, within: 5 * time.Second, maxHeap: 2 * mib},
		{name: "fragments over the read limit", config: func(c *config.Config) { c.Stream.WSReadLimit = 1024 },
			send:     append(frame(0x01, bytes.Repeat([]byte("a"), 100), false), repeat(frame(0x00, bytes.Repeat([]byte("a"), 100), false), 20)...),
			wantCode: 1009, within: 5 * time.Second, maxHeap: 2 * mib},
		{name: "64-bit length with the top bit set", send: []byte{0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, wantCode: 1002, within: 5 * time.Second, maxHeap: 2 * mib},
		{name: "binary frame", send: frame(0x82, []byte{0, 1, 2}, false), wantCode: 1003, within: 5 * time.Second, maxHeap: 2 * mib},
		{name: "invalid UTF-8 text", send: frame(0x81, []byte("{\"type\":\"\xff\"}"), false), wantCode: 1007, within: 5 * time.Second, maxHeap: 2 * mib},
		{name: "invalid UTF-8 across fragments", send: append(frame(0x01, []byte("\xe2\x82"), false), frame(0x80, []byte("x"), false)...), wantCode: 1007, within: 5 * time.Second, maxHeap: 2 * mib},
		{name: "control frame over 125 bytes", send: frame(0x89, make([]byte, 126), false), wantCode: 1002, within: 5 * time.Second, maxHeap: 2 * mib},
		{name: "fragmented control frame", send: frame(0x09, []byte("x"), false), wantCode: 1002, within: 5 * time.Second, maxHeap: 2 * mib},
		{name: "reserved data opcode", send: frame(0x83, []byte("x"), false), wantCode: 1002, within: 5 * time.Second, maxHeap: 2 * mib},
		{name: "reserved control opcode", send: frame(0x8B, []byte("x"), false), wantCode: 1002, within: 5 * time.Second, maxHeap: 2 * mib},
		{name: "reserved bits", send: frame(0xC1, []byte(`{"type":"ping"}`), false), wantCode: 1002, within: 5 * time.Second, maxHeap: 2 * mib},
		{name: "unmasked client frame", send: frame(0x81, []byte(`{"type":"ping"}`), true), wantCode: 1002, within: 5 * time.Second, maxHeap: 2 * mib},
		{name: "continuation without a message", send: frame(0x80, []byte("x"), false), wantCode: 1002, within: 5 * time.Second, maxHeap: 2 * mib},
		{name: "new message inside a fragmented one", send: append(frame(0x01, []byte("{"), false), frame(0x81, []byte("{}"), false)...), wantCode: 1002, within: 5 * time.Second, maxHeap: 2 * mib},
		{name: "close with a 1-byte payload", send: frame(0x88, []byte{3}, false), wantCode: 1002, within: 5 * time.Second, maxHeap: 2 * mib},
		{name: "close with a reserved code (1005)", send: frame(0x88, []byte{0x03, 0xED}, false), wantCode: 1002, within: 5 * time.Second, maxHeap: 2 * mib},
		{name: "close reason not UTF-8", send: frame(0x88, []byte{0x03, 0xE8, 0xff}, false), wantCode: 1007, within: 5 * time.Second, maxHeap: 2 * mib},
		{name: "valid close is echoed", send: frame(0x88, []byte{0x0F, 0xA0, 'b', 'y', 'e'}, false), wantCode: 4000, within: 5 * time.Second, maxHeap: 2 * mib},
		{name: "garbage bytes", send: []byte{0xF1, 0x7F, 0xde, 0xad, 0xbe, 0xef, 'j', 'u', 'n', 'k'}, wantCode: 1002, within: 5 * time.Second, maxHeap: 2 * mib},
		// Half a frame, then silence: the read deadline still applies
		// (ws_read_timeout 2 s here) and the client is told 1001.
		{name: "half a frame then silence", config: func(c *config.Config) {
			c.Stream.WSPingInterval, c.Stream.WSReadTimeout = time.Second, 2*time.Second
		}, send: frame(0x81, []byte(`{"type":"ping"}`), false)[:5], wantCode: 1001, within: 5 * time.Second, maxHeap: 2 * mib},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, func(c *config.Config) {
				c.Stream.WriteTimeout = time.Second
				if tc.config != nil {
					tc.config(c)
				}
			})
			// A bystander that keeps reading (so it answers pings).
			other := ts.mustWS(t, q("token", token(t, "bystander", time.Hour)))
			readWS(t, other)
			got := make(chan string, 4)
			go func() {
				for {
					_ = other.SetReadDeadline(time.Now().Add(time.Minute))
					_, b, err := other.ReadMessage()
					if err != nil {
						close(got)
						return
					}
					got <- string(b)
				}
			}()
			c := dialRawWS(t, ts, "hostile")
			if f, err := c.next(); err != nil || f.op != 0x1 || !bytes.Contains(f.payload, []byte("connection_established")) {
				t.Fatalf("first frame %v %q", err, f.payload)
			}
			heap := startHeapSampler()
			start := time.Now()
			if tc.flood {
				took := floodUntilClosed(t, c, tc.send, tc.within)
				t.Logf("closed after %v", took.Round(time.Millisecond))
			} else {
				_ = c.conn.SetWriteDeadline(time.Now().Add(tc.within))
				_, _ = c.conn.Write(tc.send) // the server may close before all is written
				code, reason := c.closeCode(t, tc.within)
				if code != tc.wantCode {
					t.Fatalf("close %d %q, want %d", code, reason, tc.wantCode)
				}
				if d := time.Since(start); d > tc.within {
					t.Fatalf("closed after %v, want within %v", d, tc.within)
				}
				// After the close frame the server ends the connection.
				_ = c.conn.SetReadDeadline(time.Now().Add(tc.within))
				if _, err := io.Copy(io.Discard, c.r); err != nil && !isConnReset(err) {
					t.Fatalf("after the close frame: %v", err)
				}
			}
			if g := heap.growth(); g > tc.maxHeap {
				t.Fatalf("server heap grew by %.1f MiB, bound %.1f MiB", float64(g)/mib, float64(tc.maxHeap)/mib)
			} else {
				t.Logf("heap growth %.2f MiB (bound %.0f MiB)", float64(g)/mib, float64(tc.maxHeap)/mib)
			}
			// Nobody else is affected.
			ts.publishTo(t, "bystander", `{"still":"fine"}`)
			select {
			case m := <-got:
				if m != `{"still":"fine"}` {
					t.Fatalf("bystander got %q", m)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("bystander got nothing")
			}
		})
	}
}

func isConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET)
}
