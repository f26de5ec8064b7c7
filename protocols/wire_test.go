package protocols

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Test-side decoders for what Herald writes: server WebSocket frames and
// Server-Sent Events, written from the specifications (RFC 6455 section
// 5.2, the HTML EventSource parsing rules), independent of the code under
// test.

type wsFrame struct {
	fin     bool
	op      byte
	payload []byte
	hdrLen  int // bytes of header on the wire
}

// readWSFrame reads one frame. Server frames must not be masked.
func readWSFrame(r io.Reader) (wsFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return wsFrame{}, err
	}
	f := wsFrame{fin: h[0]&0x80 != 0, op: h[0] & 0x0f, hdrLen: 2}
	if h[0]&0x70 != 0 {
		return f, errors.New("reserved bits set")
	}
	if h[1]&0x80 != 0 {
		return f, errors.New("server frame is masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
		f.hdrLen += 2
		if n < 126 {
			return f, fmt.Errorf("non-minimal 16-bit length %d", n)
		}
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(b[:])
		f.hdrLen += 8
		if n <= 0xffff || n>>63 != 0 {
			return f, fmt.Errorf("bad 64-bit length %d", n)
		}
	}
	if f.op >= 0x8 && (n > 125 || !f.fin) {
		return f, fmt.Errorf("bad control frame: op %#x, %d bytes, fin %v", f.op, n, f.fin)
	}
	if n > 64<<20 {
		return f, fmt.Errorf("frame of %d bytes", n)
	}
	f.payload = make([]byte, n)
	_, err := io.ReadFull(r, f.payload)
	return f, err
}

// closePayload splits a close frame payload into code and reason.
func closePayload(p []byte) (uint16, string) {
	if len(p) < 2 {
		return 1005, ""
	}
	return binary.BigEndian.Uint16(p), string(p[2:])
}

// sseEvent is one dispatched EventSource event.
type sseEvent struct {
	Event string // event type; "message" when the stream named none
	Data  string
	ID    string // the last event id when the event was dispatched
	HasID bool   // the event itself carried an id field
}

// sseParser implements the EventSource stream parsing rules.
type sseParser struct {
	r        *bufio.Reader
	lastID   string
	retry    int // last valid retry value, -1 when none seen
	comments int // comment lines seen (keepalives)
}

func newSSEParser(r io.Reader) *sseParser {
	return &sseParser{r: bufio.NewReader(r), retry: -1}
}

// line reads one line ended by CRLF, LF or CR, without its terminator.
func (p *sseParser) line() (string, error) {
	var b strings.Builder
	for {
		c, err := p.r.ReadByte()
		if err != nil {
			return b.String(), err
		}
		switch c {
		case '\n':
			return b.String(), nil
		case '\r':
			if next, err := p.r.Peek(1); err == nil && next[0] == '\n' {
				p.r.ReadByte()
			}
			return b.String(), nil
		}
		b.WriteByte(c)
	}
}

// next returns the next dispatched event.
func (p *sseParser) next() (sseEvent, error) {
	var data strings.Builder
	var typ string
	hasID := false
	for {
		l, err := p.line()
		if err != nil {
			return sseEvent{}, err
		}
		if l == "" {
			if data.Len() == 0 {
				typ, hasID = "", false
				continue
			}
			d := strings.TrimSuffix(data.String(), "\n")
			if typ == "" {
				typ = "message"
			}
			return sseEvent{Event: typ, Data: d, ID: p.lastID, HasID: hasID}, nil
		}
		if l[0] == ':' {
			p.comments++
			continue
		}
		field, value, found := strings.Cut(l, ":")
		if found {
			value = strings.TrimPrefix(value, " ")
		}
		switch field {
		case "event":
			typ = value
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
		case "id":
			if !strings.Contains(value, "\x00") {
				p.lastID, hasID = value, true
			}
		case "retry":
			if n, err := strconv.Atoi(value); err == nil && strings.Trim(value, "0123456789") == "" {
				p.retry = n
			}
		}
	}
}

// parseSSE parses a complete stream into its events.
func parseSSE(stream string) ([]sseEvent, *sseParser) {
	p := newSSEParser(strings.NewReader(stream))
	var evs []sseEvent
	for {
		ev, err := p.next()
		if err != nil {
			return evs, p
		}
		evs = append(evs, ev)
	}
}
