package compat

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// maxDepth bounds the nesting of a decoded message.
const maxDepth = 256

// kind is the type of a decoded msgpack value.
type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindInt
	kindUint
	kindFloat
	kindString
	kindArray
	kindMap
)

// Value is a decoded msgpack value that keeps map keys in wire order, so
// that re-encoding it as JSON keeps the key order the Python dict had.
type Value struct {
	kind kind
	b    bool
	i    int64
	u    uint64
	f    float64
	s    string
	arr  []Value
	keys []string // map keys in first-insertion order
	vals []Value
}

// Get returns the value of map key k.
func (v *Value) Get(k string) (*Value, bool) {
	if v.kind != kindMap {
		return nil, false
	}
	for i, key := range v.keys {
		if key == k {
			return &v.vals[i], true
		}
	}
	return nil, false
}

// Str returns the value as a string when it is one.
func (v *Value) Str() (string, bool) { return v.s, v.kind == kindString }

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("compat: malformed channels message")

// ErrInvalidUTF8 is wrapped by the decoding error of a string (or map key)
// that is not valid UTF-8: such a message is dropped, because its JSON
// would break a WebSocket text frame.
var ErrInvalidUTF8 = errors.New("string is not valid UTF-8")

// DecodeMsgpack decodes one msgpack value that must span all of b, as
// msgpack.unpackb(b, raw=False) does in channels_redis: strings must be
// UTF-8, map keys must be strings (strict_map_key), and a repeated key
// keeps its first position with the last value (like a Python dict).
// Binary and extension values are refused because json.dumps cannot
// encode them.
func DecodeMsgpack(b []byte) (Value, error) {
	r := bytes.NewReader(b)
	d := msgpack.NewDecoder(r)
	v, err := decodeValue(d, r, 0)
	if err != nil {
		return Value{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if r.Len() != 0 {
		return Value{}, fmt.Errorf("%w: %d bytes of extra data after the value", ErrMalformed, r.Len())
	}
	return v, nil
}

func decodeValue(d *msgpack.Decoder, r *bytes.Reader, depth int) (Value, error) {
	if depth > maxDepth {
		return Value{}, fmt.Errorf("nested deeper than %d", maxDepth)
	}
	c, err := d.PeekCode()
	if err != nil {
		return Value{}, fmt.Errorf("read type: %w", err)
	}
	switch {
	case c == msgpcode.Nil:
		_ = d.Skip()
		return Value{kind: kindNull}, nil
	case c == msgpcode.True || c == msgpcode.False:
		bv, err := d.DecodeBool()
		return Value{kind: kindBool, b: bv}, err
	case msgpcode.IsFixedNum(c), c == msgpcode.Int8, c == msgpcode.Int16, c == msgpcode.Int32, c == msgpcode.Int64:
		iv, err := d.DecodeInt64()
		return Value{kind: kindInt, i: iv}, err
	case c == msgpcode.Uint8, c == msgpcode.Uint16, c == msgpcode.Uint32, c == msgpcode.Uint64:
		uv, err := d.DecodeUint64()
		return Value{kind: kindUint, u: uv}, err
	case c == msgpcode.Float:
		fv, err := d.DecodeFloat32()
		return Value{kind: kindFloat, f: float64(fv)}, err
	case c == msgpcode.Double:
		fv, err := d.DecodeFloat64()
		return Value{kind: kindFloat, f: fv}, err
	case msgpcode.IsFixedString(c), c == msgpcode.Str8, c == msgpcode.Str16, c == msgpcode.Str32:
		s, err := decodeString(d)
		return Value{kind: kindString, s: s}, err
	case msgpcode.IsFixedArray(c), c == msgpcode.Array16, c == msgpcode.Array32:
		n, err := d.DecodeArrayLen()
		if err != nil {
			return Value{}, fmt.Errorf("array header: %w", err)
		}
		if n > r.Len() { // every element takes at least one byte
			return Value{}, fmt.Errorf("array of %d elements in %d bytes", n, r.Len())
		}
		v := Value{kind: kindArray, arr: make([]Value, 0, n)}
		for range n {
			e, err := decodeValue(d, r, depth+1)
			if err != nil {
				return Value{}, err
			}
			v.arr = append(v.arr, e)
		}
		return v, nil
	case msgpcode.IsFixedMap(c), c == msgpcode.Map16, c == msgpcode.Map32:
		n, err := d.DecodeMapLen()
		if err != nil {
			return Value{}, fmt.Errorf("map header: %w", err)
		}
		if 2*n > r.Len() {
			return Value{}, fmt.Errorf("map of %d entries in %d bytes", n, r.Len())
		}
		v := Value{kind: kindMap, keys: make([]string, 0, n), vals: make([]Value, 0, n)}
		for range n {
			kc, err := d.PeekCode()
			if err != nil {
				return Value{}, fmt.Errorf("map key: %w", err)
			}
			if !(msgpcode.IsFixedString(kc) || kc == msgpcode.Str8 || kc == msgpcode.Str16 || kc == msgpcode.Str32) {
				return Value{}, fmt.Errorf("map key of type 0x%02x, only string keys are accepted", kc)
			}
			k, err := decodeString(d)
			if err != nil {
				return Value{}, err
			}
			e, err := decodeValue(d, r, depth+1)
			if err != nil {
				return Value{}, err
			}
			dup := false
			for i, have := range v.keys {
				if have == k {
					v.vals[i], dup = e, true
					break
				}
			}
			if !dup {
				v.keys = append(v.keys, k)
				v.vals = append(v.vals, e)
			}
		}
		return v, nil
	case c == msgpcode.Bin8, c == msgpcode.Bin16, c == msgpcode.Bin32:
		return Value{}, errors.New("binary value (bytes), which JSON cannot carry")
	case msgpcode.IsExt(c):
		return Value{}, fmt.Errorf("extension type 0x%02x, which JSON cannot carry", c)
	default:
		return Value{}, fmt.Errorf("invalid msgpack type byte 0x%02x", c)
	}
}

func decodeString(d *msgpack.Decoder) (string, error) {
	s, err := d.DecodeString()
	if err != nil {
		return "", fmt.Errorf("string: %w", err)
	}
	if !utf8.ValidString(s) {
		return "", ErrInvalidUTF8
	}
	return s, nil
}

// Style selects how a Value is written as JSON.
type Style uint8

const (
	// StylePython writes exactly what Python's json.dumps(value) writes
	// with default arguments: ", " and ": " separators, non-ASCII as
	// lowercase \uXXXX escapes (surrogate pairs above U+FFFF), floats as
	// Python's repr.
	StylePython Style = iota
	// StyleCompact writes no spaces and UTF-8 text as is.
	StyleCompact
)

// AppendJSON appends v as JSON in style s. It fails for NaN and
// infinities, which json.dumps would write as the non-JSON tokens NaN and
// Infinity that browsers' JSON.parse rejects.
func AppendJSON(dst []byte, v *Value, s Style) ([]byte, error) {
	switch v.kind {
	case kindNull:
		return append(dst, "null"...), nil
	case kindBool:
		if v.b {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case kindInt:
		return strconv.AppendInt(dst, v.i, 10), nil
	case kindUint:
		return strconv.AppendUint(dst, v.u, 10), nil
	case kindFloat:
		if math.IsNaN(v.f) || math.IsInf(v.f, 0) {
			return dst, fmt.Errorf("%w: %v is not representable in JSON", ErrMalformed, v.f)
		}
		return appendPyFloat(dst, v.f), nil
	case kindString:
		return appendString(dst, v.s, s), nil
	case kindArray:
		dst = append(dst, '[')
		for i := range v.arr {
			if i > 0 {
				dst = appendSep(dst, ',', s)
			}
			var err error
			if dst, err = AppendJSON(dst, &v.arr[i], s); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case kindMap:
		dst = append(dst, '{')
		for i, k := range v.keys {
			if i > 0 {
				dst = appendSep(dst, ',', s)
			}
			dst = appendString(dst, k, s)
			dst = appendSep(dst, ':', s)
			var err error
			if dst, err = AppendJSON(dst, &v.vals[i], s); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	}
	return dst, fmt.Errorf("%w: unknown value kind %d", ErrMalformed, v.kind)
}

func appendSep(dst []byte, c byte, s Style) []byte {
	if s == StylePython {
		return append(dst, c, ' ')
	}
	return append(dst, c)
}

const hexDigits = "0123456789abcdef"

// appendString writes a JSON string. Both styles escape '"', '\\' and
// control characters as json.dumps does (\n \r \t \b \f, else \u00XX);
// StylePython also escapes everything outside ' '..'~'.
func appendString(dst []byte, str string, s Style) []byte {
	dst = append(dst, '"')
	for _, r := range str {
		switch {
		case r == '"':
			dst = append(dst, '\\', '"')
		case r == '\\':
			dst = append(dst, '\\', '\\')
		case r == '\n':
			dst = append(dst, '\\', 'n')
		case r == '\r':
			dst = append(dst, '\\', 'r')
		case r == '\t':
			dst = append(dst, '\\', 't')
		case r == '\b':
			dst = append(dst, '\\', 'b')
		case r == '\f':
			dst = append(dst, '\\', 'f')
		case r < 0x20 || (s == StylePython && r > 0x7e):
			if r > 0xffff {
				r1, r2 := utf16.EncodeRune(r)
				dst = appendU(appendU(dst, r1), r2)
			} else {
				dst = appendU(dst, r)
			}
		default:
			dst = utf8.AppendRune(dst, r)
		}
	}
	return append(dst, '"')
}

func appendU(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// appendPyFloat writes f as Python's repr(float) does: the shortest digits
// that round-trip, positional notation with at least one fractional digit
// when the decimal exponent is in [-4, 16), else d.ddde±XX.
func appendPyFloat(dst []byte, f float64) []byte {
	// Shortest round-trip digits, as "d.ddde±X".
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	neg := false
	if e[0] == '-' {
		neg, e = true, e[1:]
	}
	mant, expPart, _ := bytes.Cut(e, []byte{'e'})
	exp, _ := strconv.Atoi(string(expPart))
	digits := make([]byte, 0, len(mant))
	for _, c := range mant {
		if c != '.' {
			digits = append(digits, c)
		}
	}
	if neg {
		dst = append(dst, '-')
	}
	decpt := exp + 1 // value = 0.digits × 10^decpt
	if f == 0 {
		return append(dst, "0.0"...)
	}
	if decpt <= -4 || decpt > 16 {
		dst = append(dst, digits[0])
		if len(digits) > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if exp < 0 {
			dst = append(dst, '-')
			exp = -exp
		} else {
			dst = append(dst, '+')
		}
		if exp < 10 {
			dst = append(dst, '0')
		}
		return strconv.AppendInt(dst, int64(exp), 10)
	}
	switch {
	case decpt <= 0:
		dst = append(dst, '0', '.')
		for range -decpt {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	case decpt >= len(digits):
		dst = append(dst, digits...)
		for range decpt - len(digits) {
			dst = append(dst, '0')
		}
		dst = append(dst, '.', '0')
	default:
		dst = append(dst, digits[:decpt]...)
		dst = append(dst, '.')
		dst = append(dst, digits[decpt:]...)
	}
	return dst
}
