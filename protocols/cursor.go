package protocols

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/heraldrt/herald/fanout"
)

// A cursor is one compact, URL-safe string that records a connection's
// position in every channel it receives. It is what SSE sends as the event
// id (so EventSource replays it as Last-Event-ID), what the envelope format
// carries as "cursor", and what a WebSocket client passes back as ?since=.
// Because it names channels by a hash of their name rather than by their
// order in the connection, it stays valid on any node, after a transport
// switch and when the connection's channel list changes.
//
// Wire form: base64url without padding of
//
//	version byte (1), then per channel: 4-byte big-endian FNV-1a-32 hash of
//	the channel name, uvarint epoch, uvarint offset.
const cursorVersion = 1

// MaxCursorLen is the longest cursor string accepted from a client. A
// connection has a handful of channels; 1 KiB leaves room for ~60.
const MaxCursorLen = 1024

// maxCursorEntries bounds the channels one cursor may name.
const maxCursorEntries = 64

// ErrBadCursor is returned for a cursor that cannot be parsed.
var ErrBadCursor = errors.New("malformed cursor")

// CursorEntry is one channel's position inside a cursor.
type CursorEntry struct {
	// Hash is ChannelHash of the channel name.
	Hash uint32
	// Pos is the position of the last message the client received.
	Pos fanout.Position
}

// Cursor is a parsed cursor: one entry per channel.
type Cursor []CursorEntry

// ChannelHash is the 32-bit FNV-1a hash of a channel name that cursors use
// to name channels.
func ChannelHash(name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return h.Sum32()
}

// Lookup returns the position recorded for the channel with hash h.
func (c Cursor) Lookup(h uint32) (fanout.Position, bool) {
	for _, e := range c {
		if e.Hash == h {
			return e.Pos, true
		}
	}
	return fanout.Position{}, false
}

// ParseCursor decodes a cursor string from a client. It never panics; any
// malformed input yields an error wrapping ErrBadCursor. The empty string
// parses to an empty cursor.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) > MaxCursorLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrBadCursor, MaxCursorLen)
	}
	var buf [MaxCursorLen]byte
	n, err := base64.RawURLEncoding.Decode(buf[:], []byte(s))
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url", ErrBadCursor)
	}
	b := buf[:n]
	if len(b) == 0 || b[0] != cursorVersion {
		return nil, fmt.Errorf("%w: unknown version", ErrBadCursor)
	}
	b = b[1:]
	var c Cursor
	for len(b) > 0 {
		if len(c) == maxCursorEntries {
			return nil, fmt.Errorf("%w: more than %d channels", ErrBadCursor, maxCursorEntries)
		}
		if len(b) < 4 {
			return nil, fmt.Errorf("%w: truncated entry", ErrBadCursor)
		}
		var e CursorEntry
		e.Hash = binary.BigEndian.Uint32(b)
		b = b[4:]
		epoch, k := binary.Uvarint(b)
		if k <= 0 || epoch == 0 || epoch > 0xFFFFFFFF {
			return nil, fmt.Errorf("%w: bad epoch", ErrBadCursor)
		}
		b = b[k:]
		off, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, fmt.Errorf("%w: bad offset", ErrBadCursor)
		}
		b = b[k:]
		e.Pos = fanout.Position{Epoch: uint32(epoch), Offset: off}
		c = append(c, e)
	}
	return c, nil
}

// maxEntryBytes is the largest binary size of one cursor entry.
const maxEntryBytes = 4 + binary.MaxVarintLen32 + binary.MaxVarintLen64

// AppendCursor appends the cursor string for entries to dst. It allocates
// only when dst must grow.
func AppendCursor(dst []byte, entries ...CursorEntry) []byte {
	var scratch [1 + 8*maxEntryBytes]byte
	raw := scratch[:0]
	if len(entries) > 8 {
		raw = make([]byte, 0, 1+len(entries)*maxEntryBytes)
	}
	raw = appendRawCursor(raw, entries)
	return base64.RawURLEncoding.AppendEncode(dst, raw)
}

func appendRawCursor(raw []byte, entries []CursorEntry) []byte {
	raw = append(raw, cursorVersion)
	for _, e := range entries {
		raw = binary.BigEndian.AppendUint32(raw, e.Hash)
		raw = binary.AppendUvarint(raw, uint64(e.Pos.Epoch))
		raw = binary.AppendUvarint(raw, e.Pos.Offset)
	}
	return raw
}

// String encodes c as a cursor string.
func (c Cursor) String() string { return string(AppendCursor(nil, c...)) }
