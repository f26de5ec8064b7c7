package protocols

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// scriptConn is a net.Conn whose reads come from a script (a few bytes at
// a time, so frames straddle reads) and whose writes are recorded. When
// the script is exhausted a read reports a passed deadline, as a silent
// client would: the session then closes with 1001 after writing everything
// queued, so the output is complete and deterministic.
type scriptConn struct {
	in    *bytes.Reader
	chunk int
	mu    sync.Mutex
	out   bytes.Buffer
}

func (c *scriptConn) Read(p []byte) (int, error) {
	if c.in.Len() == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	return c.in.Read(p[:min(len(p), c.chunk)])
}

func (c *scriptConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

func (c *scriptConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.out.Bytes())
}

func (*scriptConn) Close() error                     { return nil }
func (*scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (*scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (*scriptConn) SetDeadline(time.Time) error      { return nil }
func (*scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (*scriptConn) SetWriteDeadline(time.Time) error { return nil }

// expectedFrame is one server frame the reference predicts.
type expectedFrame struct {
	op      byte
	payload string
}

func (f expectedFrame) String() string { return fmt.Sprintf("op %#x %q", f.op, f.payload) }

// referenceWS decodes a whole client byte stream from RFC 6455 (section
// 5: framing, masking, fragmentation, control frames; 7.4: close codes)
// independently of wsReader, and predicts what a session must write back:
// a pong per ping, the ParseInbound reply per text message, and one close
// frame — the client's code echoed, the code of the first violation, or
// 1001 when the stream ends (the client falls silent).
func referenceWS(in []byte, limit int) []expectedFrame {
	var out []expectedFrame
	closing := func(code uint16, reason string) []expectedFrame {
		return append(out, expectedFrame{opClose, string(binary.BigEndian.AppendUint16(nil, code)) + reason})
	}
	protocolError := func() []expectedFrame { return closing(1002, "protocol_error") }
	var msg []byte
	open := false
	for {
		if len(in) < 2 {
			return closing(1001, "going_away")
		}
		fin, rsv, op := in[0]>>7 == 1, in[0]>>4&7, in[0]&15
		masked, n := in[1]>>7 == 1, uint64(in[1]&127)
		in = in[2:]
		if rsv != 0 || !masked {
			return protocolError()
		}
		control := op >= 8
		switch op {
		case 8, 9, 10:
			if !fin || n > 125 {
				return protocolError()
			}
		case 2:
			return closing(1003, "binary frames are not supported")
		case 1:
			if open {
				return protocolError()
			}
		case 0:
			if !open {
				return protocolError()
			}
		default:
			return protocolError()
		}
		if n == 126 || n == 127 {
			size := map[uint64]int{126: 2, 127: 8}[n]
			if len(in) < size {
				return closing(1001, "going_away")
			}
			n = 0
			for _, b := range in[:size] {
				n = n<<8 | uint64(b)
			}
			in = in[size:]
			if n >= 1<<63 {
				return protocolError()
			}
		}
		if !control && uint64(len(msg))+n > uint64(limit) {
			return closing(1009, "message too big")
		}
		if uint64(len(in)) < 4+n {
			return closing(1001, "going_away")
		}
		key, p := in[:4], bytes.Clone(in[4:4+n])
		in = in[4+n:]
		for i := range p {
			p[i] ^= key[i%4]
		}
		switch op {
		case 9:
			out = append(out, expectedFrame{opPong, string(p)})
			continue
		case 10:
			continue
		case 8:
			switch {
			case len(p) == 0:
				return closing(1000, "")
			case len(p) == 1:
				return protocolError()
			}
			code := int(p[0])<<8 | int(p[1])
			registered := map[int]bool{1000: true, 1001: true, 1002: true, 1003: true, 1007: true, 1008: true,
				1009: true, 1010: true, 1011: true, 1012: true, 1013: true, 1014: true}
			if !registered[code] && (code < 3000 || code > 4999) {
				return protocolError()
			}
			if !utf8.Valid(p[2:]) {
				return closing(1007, CloseInvalidPayload.Reason)
			}
			return closing(uint16(code), "")
		}
		msg = append(msg, p...)
		if open = !fin; open {
			continue
		}
		_, action, reply := ParseInbound(msg)
		msg = nil
		switch action {
		case ActionReply:
			out = append(out, expectedFrame{opText, string(reply)})
		case ActionRefresh:
			out = append(out, expectedFrame{opText, string(ErrorEvent("token refresh is not enabled"))})
		case ActionClose:
			return closing(1007, CloseInvalidPayload.Reason)
		}
	}
}

// clientFrame builds a masked client frame (first byte as given).
func clientFrame(first byte, p string) []byte {
	b := []byte{first}
	switch n := len(p); {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	key := []byte{0xa1, 0xb2, 0xc3, 0xd4}
	b = append(b, key...)
	for i := 0; i < len(p); i++ {
		b = append(b, p[i]^key[i%4])
	}
	return b
}

// FuzzServeWS feeds arbitrary client bytes through a WebSocket session's
// whole read path (frame reader, inbound handling, reply queue, writer)
// and checks every byte Herald writes back against referenceWS: valid
// server frames only, exactly the predicted pongs, replies and close frame.
func FuzzServeWS(f *testing.F) {
	cat := func(fs ...[]byte) []byte { return bytes.Join(fs, nil) }
	for _, seed := range [][]byte{
		clientFrame(0x89, "hb"),
		clientFrame(0x81, `{"type":"ping","timestamp":7}`),
		cat(clientFrame(0x01, `{"type":`), clientFrame(0x89, "x"), clientFrame(0x80, `"ping"}`)),
		cat(clientFrame(0x81, `{"type":"refresh","token":"t"}`), clientFrame(0x88, "\x03\xe8bye")),
		clientFrame(0x88, "\x03\xed"),
		clientFrame(0x82, "\x00"),
		clientFrame(0x81, "\xff"),
		clientFrame(0x81, string(make([]byte, 300))),
		{0xF1, 0x7F, 0xde, 0xad, 0xbe, 0xef, 'j', 'u', 'n', 'k'},
		{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'},
		cat(clientFrame(0x8A, ""), clientFrame(0x81, "[]"), clientFrame(0x80, "x")),
	} {
		f.Add(seed)
	}
	const limit = 256
	w := NewWriters(2)
	f.Cleanup(w.Close)
	env := &Env{
		Config:  Config{WSReadLimit: limit, WSPingInterval: time.Hour, MaxQueue: 1 << 20, MaxQueueBytes: 1 << 30, WriteTimeout: 5 * time.Second}.Defaults(),
		Writers: w,
		History: nil,
		Log:     slog.New(slog.DiscardHandler),
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		conn := &scriptConn{in: bytes.NewReader(in), chunk: 7}
		s := NewSession(env, Options{ID: 1, UserID: "fuzz", Channels: []string{"ch"}, Transport: WSTransport{Format: WSRaw}})
		s.Attach(conn)
		s.ServeWS(conn)
		select {
		case <-s.Done():
		case <-time.After(waitTimeout):
			t.Fatal("session did not end")
		}
		want := referenceWS(in, limit)
		r := bytes.NewReader(conn.written())
		for i, exp := range want {
			got, err := readWSFrame(r)
			if err != nil {
				t.Fatalf("frame %d: %v (want %v)", i, err, exp)
			}
			if !got.fin || got.op != exp.op || string(got.payload) != exp.payload {
				t.Fatalf("frame %d: got op %#x %q, want %v", i, got.op, got.payload, exp)
			}
			if got.op == opText && !utf8.Valid(got.payload) {
				t.Fatalf("frame %d: text frame is not UTF-8", i)
			}
		}
		if rest, _ := io.ReadAll(r); len(rest) > 0 {
			t.Fatalf("%d bytes written after the close frame: %q", len(rest), rest)
		}
	})
}

// BenchmarkWSReader: the cost of reading one client frame (a masked
// 15-byte text message, and a ping), buffer reuse included.
func BenchmarkWSReader(b *testing.B) {
	for _, bc := range []struct {
		name  string
		frame []byte
	}{
		{"text", clientFrame(0x81, `{"type":"ping"}`)},
		{"ping", clientFrame(0x89, "hb")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			stream := bytes.Repeat(bc.frame, 1024)
			src := bytes.NewReader(stream)
			r := newWSReader(src, 64<<10, 0, 1)
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.frame)))
			for i := 0; b.Loop(); i++ {
				if i%1024 == 0 {
					src.Reset(stream)
					r.r.Reset(src)
				}
				if _, _, err := r.next(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
