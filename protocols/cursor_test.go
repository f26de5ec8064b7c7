package protocols

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/heraldrt/herald/fanout"
)

func entries(n int, f func(i int) CursorEntry) []CursorEntry {
	es := make([]CursorEntry, n)
	for i := range es {
		es[i] = f(i)
	}
	return es
}

func TestCursorRoundTrip(t *testing.T) {
	small := func(i int) CursorEntry {
		return CursorEntry{Hash: uint32(i) * 2654435761, Pos: fanout.Position{Epoch: uint32(i + 1), Offset: uint64(i)}}
	}
	big := func(i int) CursorEntry {
		return CursorEntry{Hash: math.MaxUint32 - uint32(i), Pos: fanout.Position{Epoch: math.MaxUint32 - uint32(i), Offset: math.MaxUint64 - uint64(i)}}
	}
	tests := []struct {
		name    string
		entries []CursorEntry
	}{
		{"empty", nil},
		{"one", []CursorEntry{{Hash: ChannelHash("user:42"), Pos: fanout.Position{Epoch: 7, Offset: 99}}}},
		{"offset zero", []CursorEntry{{Hash: 1, Pos: fanout.Position{Epoch: 1, Offset: 0}}}},
		{"hash zero", []CursorEntry{{Hash: 0, Pos: fanout.Position{Epoch: 1, Offset: 1}}}},
		{"max values", []CursorEntry{{Hash: math.MaxUint32, Pos: fanout.Position{Epoch: math.MaxUint32, Offset: math.MaxUint64}}}},
		{"eight", entries(8, small)},
		{"eight max", entries(8, big)},     // fills AppendCursor's stack scratch exactly
		{"nine", entries(9, small)},        // one past the scratch
		{"nine max", entries(9, big)},      // largest entries past the scratch
		{"sixty-four", entries(64, small)}, // the most ParseCursor accepts
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := string(AppendCursor(nil, tt.entries...))
			if s == "" {
				t.Fatal("empty cursor string")
			}
			if strings.ContainsAny(s, "+/=") {
				t.Fatalf("cursor %q is not unpadded base64url", s)
			}
			if len(s) > MaxCursorLen {
				t.Fatalf("cursor of %d entries is %d bytes, above MaxCursorLen", len(tt.entries), len(s))
			}
			c, err := ParseCursor(s)
			if err != nil {
				t.Fatalf("ParseCursor(%q): %v", s, err)
			}
			if !slices.Equal(c, tt.entries) {
				t.Fatalf("round trip:\n got %v\nwant %v", c, tt.entries)
			}
			if got := Cursor(tt.entries).String(); got != s {
				t.Fatalf("String() = %q, AppendCursor gave %q", got, s)
			}
			// AppendCursor appends: a prefix is kept.
			if got := string(AppendCursor([]byte("id: "), tt.entries...)); got != "id: "+s {
				t.Fatalf("AppendCursor with prefix = %q", got)
			}
			for _, e := range tt.entries {
				if p, ok := c.Lookup(e.Hash); !ok || p != firstPos(tt.entries, e.Hash) {
					t.Fatalf("Lookup(%#x) = %v, %v", e.Hash, p, ok)
				}
			}
		})
	}
}

func firstPos(es []CursorEntry, h uint32) fanout.Position {
	for _, e := range es {
		if e.Hash == h {
			return e.Pos
		}
	}
	return fanout.Position{}
}

func TestCursorEmptyString(t *testing.T) {
	c, err := ParseCursor("")
	if err != nil || len(c) != 0 {
		t.Fatalf(`ParseCursor("") = %v, %v; want empty, nil`, c, err)
	}
	if _, ok := c.Lookup(ChannelHash("x")); ok {
		t.Fatal("Lookup in an empty cursor found an entry")
	}
	// An empty cursor still encodes its version byte.
	if s := Cursor(nil).String(); s != "AQ" {
		t.Fatalf("empty cursor encodes as %q, want AQ", s)
	}
}

func TestChannelHash(t *testing.T) {
	// FNV-1a 32-bit reference values.
	for name, want := range map[string]uint32{"": 0x811c9dc5, "a": 0xe40c292c, "foobar": 0xbf9cf968} {
		if got := ChannelHash(name); got != want {
			t.Errorf("ChannelHash(%q) = %#x, want %#x", name, got, want)
		}
	}
}

// rawCursor builds a cursor string from raw bytes after the version byte.
func rawCursor(version byte, parts ...[]byte) string {
	b := []byte{version}
	for _, p := range parts {
		b = append(b, p...)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func uv(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func TestParseCursorErrors(t *testing.T) {
	hash := []byte{0xde, 0xad, 0xbe, 0xef}
	var many [][]byte
	for range maxCursorEntries + 1 {
		many = append(many, hash, uv(1), uv(1))
	}
	tests := []struct {
		name string
		in   string
	}{
		{"too long", strings.Repeat("A", MaxCursorLen+1)},
		{"bad base64 char", "AQ$$"},
		{"standard base64 alphabet", "AQ+/"},
		{"padded", "AQ=="},
		{"impossible length", "AQAAA"},
		{"only newline", "\n"},
		{"wrong version 0", rawCursor(0)},
		{"wrong version 2", rawCursor(2, hash, uv(1), uv(1))},
		{"truncated hash", rawCursor(1, hash[:3])},
		{"missing epoch", rawCursor(1, hash)},
		{"unterminated epoch varint", rawCursor(1, hash, []byte{0x80})},
		{"missing offset", rawCursor(1, hash, uv(5))},
		{"unterminated offset varint", rawCursor(1, hash, uv(5), []byte{0xff, 0xff})},
		{"offset varint overflow", rawCursor(1, hash, uv(5), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})},
		{"zero epoch", rawCursor(1, hash, uv(0), uv(1))},
		{"epoch above uint32", rawCursor(1, hash, uv(1<<32), uv(1))},
		{"second entry truncated", rawCursor(1, hash, uv(1), uv(1), hash[:2])},
		{"more than 64 entries", rawCursor(1, many...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCursor(tt.in)
			if err == nil {
				t.Fatalf("ParseCursor(%q) = %v, want an error", tt.in, c)
			}
			if !errors.Is(err, ErrBadCursor) {
				t.Fatalf("error %v does not wrap ErrBadCursor", err)
			}
			if c != nil {
				t.Fatalf("ParseCursor returned entries %v with an error", c)
			}
		})
	}
}

func TestParseCursorLimits(t *testing.T) {
	// Exactly 64 entries and exactly MaxCursorLen bytes are accepted.
	es := entries(maxCursorEntries, func(i int) CursorEntry {
		return CursorEntry{Hash: uint32(i), Pos: fanout.Position{Epoch: 1, Offset: 1}}
	})
	if c, err := ParseCursor(Cursor(es).String()); err != nil || len(c) != maxCursorEntries {
		t.Fatalf("64 entries: %d entries, %v", len(c), err)
	}
	// 768 decoded bytes encode to exactly 1024 base64 characters: the
	// version byte and 64 entries whose offsets use non-minimal varints
	// (0x80 continuation bytes ending in 0x00, value 0).
	raw := []byte{cursorVersion}
	for i := range maxCursorEntries {
		raw = append(raw, 0, 0, 0, byte(i), 1)
		n := 7
		if i == maxCursorEntries-1 {
			n = 768 - len(raw) // the last offset fills up to 768 bytes
		}
		for range n - 1 {
			raw = append(raw, 0x80)
		}
		raw = append(raw, 0x00)
	}
	s := base64.RawURLEncoding.EncodeToString(raw)
	if len(s) != MaxCursorLen {
		t.Fatalf("test cursor is %d bytes, want %d", len(s), MaxCursorLen)
	}
	c, err := ParseCursor(s)
	if err != nil {
		t.Fatalf("cursor of exactly MaxCursorLen: %v", err)
	}
	if len(c) != maxCursorEntries || c[63].Hash != 63 || c[63].Pos != (fanout.Position{Epoch: 1}) {
		t.Fatalf("parsed %d entries, last %v", len(c), c[len(c)-1])
	}
	// One more byte of input is too long.
	if _, err := ParseCursor(s + "A"); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("cursor of MaxCursorLen+1: %v", err)
	}
}

func FuzzParseCursor(f *testing.F) {
	f.Add("")
	f.Add("AQ")
	f.Add(Cursor{{Hash: 1, Pos: fanout.Position{Epoch: 2, Offset: 3}}}.String())
	f.Add(Cursor{{Hash: math.MaxUint32, Pos: fanout.Position{Epoch: math.MaxUint32, Offset: math.MaxUint64}}}.String())
	f.Add(Cursor(entries(9, func(i int) CursorEntry {
		return CursorEntry{Hash: uint32(i), Pos: fanout.Position{Epoch: 5, Offset: uint64(i) << 40}}
	})).String())
	f.Add(rawCursor(1, []byte{1, 2, 3, 4}, uv(0), uv(1)))
	f.Add(rawCursor(1, []byte{1, 2, 3, 4}, uv(1<<32), uv(1)))
	f.Add(rawCursor(2))
	f.Add("AQ$$")
	f.Add(strings.Repeat("A", MaxCursorLen))
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			if !errors.Is(err, ErrBadCursor) {
				t.Fatalf("error %v does not wrap ErrBadCursor", err)
			}
			return
		}
		if len(c) > maxCursorEntries {
			t.Fatalf("accepted %d entries", len(c))
		}
		for _, e := range c {
			if e.Pos.Epoch == 0 {
				t.Fatalf("accepted a zero epoch: %v", c)
			}
		}
		enc := c.String()
		if len(enc) > MaxCursorLen {
			t.Fatalf("re-encoding of an accepted cursor is %d bytes", len(enc))
		}
		c2, err := ParseCursor(enc)
		if err != nil {
			t.Fatalf("re-encoded cursor %q of %q does not parse: %v", enc, s, err)
		}
		if !slices.Equal(c, c2) {
			t.Fatalf("round trip of %q: %v, then %v", s, c, c2)
		}
		if again := c2.String(); again != enc {
			t.Fatalf("encoding is not canonical: %q then %q", enc, again)
		}
	})
}

func BenchmarkAppendCursor(b *testing.B) {
	for _, n := range []int{1, 3, 8} {
		es := entries(n, func(i int) CursorEntry {
			return CursorEntry{Hash: ChannelHash("user:" + string(rune('a'+i))), Pos: fanout.Position{Epoch: 0x9abcdef0, Offset: 1_000_000 + uint64(i)}}
		})
		b.Run(string(rune('0'+n))+"entries", func(b *testing.B) {
			dst := make([]byte, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				dst = AppendCursor(dst[:0], es...)
			}
			if testing.AllocsPerRun(100, func() { dst = AppendCursor(dst[:0], es...) }) != 0 {
				b.Fatal("AppendCursor allocates with a reused dst")
			}
		})
	}
}

func BenchmarkParseCursor(b *testing.B) {
	s := Cursor(entries(3, func(i int) CursorEntry {
		return CursorEntry{Hash: uint32(i), Pos: fanout.Position{Epoch: 0x9abcdef0, Offset: 1_000_000}}
	})).String()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCursor(s); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAppendCursorNoAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	es := entries(8, func(i int) CursorEntry {
		return CursorEntry{Hash: uint32(i), Pos: fanout.Position{Epoch: math.MaxUint32, Offset: math.MaxUint64}}
	})
	dst := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { dst = AppendCursor(dst[:0], es...) }); n != 0 {
		t.Fatalf("AppendCursor with a reused dst: %v allocs, want 0", n)
	}
}
