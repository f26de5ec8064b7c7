package bench

import (
	"bytes"
	"strconv"
)

// Stream kinds carried in the "k" member of a benchmark payload.
const (
	// KindBroadcast marks a message published to the broadcast channel.
	KindBroadcast byte = 'b'
	// KindUser marks a message published to one user.
	KindUser byte = 'u'
)

// AppendPayload appends a benchmark payload, a JSON object
// {"k":"b","s":<seq>,"ts":<publish unix ns>,"p":"xxx…"} where p pads the
// payload to about pad bytes.
func AppendPayload(dst []byte, kind byte, seq uint64, ts int64, pad int) []byte {
	dst = append(dst, `{"k":"`...)
	dst = append(dst, kind)
	dst = append(dst, `","s":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	if pad > 0 {
		dst = append(dst, `,"p":"`...)
		for range pad {
			dst = append(dst, 'x')
		}
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// Parsed is what a receiver learns from one message: the benchmark
// fields when it is a benchmark payload (Kind != 0), and the cursor when
// the frame carries one (WebSocket envelope format).
type Parsed struct {
	Kind   byte
	Seq    uint64
	TS     int64
	Cursor []byte // aliases the input
}

var (
	keyCursor = []byte(`"cursor":"`)
	keyKind   = []byte(`"k":"`)
	keySeq    = []byte(`"s":`)
	keyTS     = []byte(`"ts":`)
)

// ParseMessage extracts the benchmark fields and the cursor from a raw
// payload or an envelope ({"cursor":…,"channel":…,"data":<payload>}). It
// does not validate JSON: it looks for the members the benchmark itself
// writes, which is enough and far cheaper than decoding.
func ParseMessage(b []byte) Parsed {
	var p Parsed
	if i := bytes.Index(b, keyCursor); i >= 0 {
		rest := b[i+len(keyCursor):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 {
			p.Cursor = rest[:j]
		}
	}
	i := bytes.Index(b, keyKind)
	if i < 0 || i+len(keyKind) >= len(b) {
		return p
	}
	kind := b[i+len(keyKind)]
	seq, ok1 := numberAfter(b, keySeq)
	ts, ok2 := numberAfter(b, keyTS)
	if !ok1 || !ok2 || (kind != KindBroadcast && kind != KindUser) {
		return p
	}
	p.Kind, p.Seq, p.TS = kind, seq, int64(ts)
	return p
}

func numberAfter(b, key []byte) (uint64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	var n uint64
	digits := 0
	for _, c := range b[i+len(key):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
		digits++
	}
	return n, digits > 0
}
