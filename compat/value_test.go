package compat

import (
	"encoding/json"
	"math"
	"os/exec"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func mustPack(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withChannel adds __asgi_channel__: [member] to a packed event.
func withChannel(t testing.TB, packed []byte, member string) []byte {
	t.Helper()
	var m map[string]any
	if err := msgpack.Unmarshal(packed, &m); err != nil {
		t.Fatal(err)
	}
	m["__asgi_channel__"] = []string{member}
	return mustPack(t, m)
}

// TestJSONMatchesPython packs values with Python's msgpack (as
// channels_redis does) and checks AppendJSON writes exactly what
// json.dumps writes: key order, spacing, numbers, escapes.
func TestJSONMatchesPython(t *testing.T) {
	py := pythonWith(t, "msgpack")
	script := `import json, msgpack, sys
values = [
    {"type": "oracle_upload_progress", "transaction_id": 602, "step": "Interface Loader", "step_number": 3,
     "total_steps": 5, "message": "Running Interface Loader", "status": "processing", "progress": 0.6},
    {"z": 1, "a": 2, "m": [3, {"y": None, "b": True, "c": False}]},
    {"text": "café — 日本 😀 \u2028 \x00\x01\x1f\x7f \"q\" \\ \n\r\t\b\f /"},
    [0.1, 1.0, -0.0, 0.0, 1e16, 1e15, 123456789012345678.0, 1.5e-5, 0.0001, 0.00001, 2.5e-300, 1.7976931348623157e308,
     5e-324, 3.141592653589793, -2.0, 100.0, 1e22, 12345.678, 1/3],
    [0, -1, 127, 128, -32, -33, 255, 65535, 2**32, 2**63 - 1, -2**63, 2**64 - 1],
    {"": "", "nested": {"deeper": {"deepest": []}}, "list": [[], {}]},
    "just a string", 42, None, True,
]
out = []
for v in values:
    out.append([msgpack.packb(v, use_bin_type=True).hex(), json.dumps(v)])
print(json.dumps(out))`
	out, err := exec.Command(py, "-c", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	var cases [][2]string
	if err := json.Unmarshal(out, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		packed := mustHex(t, c[0])
		v, err := DecodeMsgpack(packed)
		if err != nil {
			t.Fatalf("decode %s: %v", c[1], err)
		}
		got, err := AppendJSON(nil, &v, StylePython)
		if err != nil {
			t.Fatalf("encode %s: %v", c[1], err)
		}
		if string(got) != c[1] {
			t.Errorf("python style:\n got %s\nwant %s", got, c[1])
		}
		compact, err := AppendJSON(nil, &v, StyleCompact)
		if err != nil {
			t.Fatal(err)
		}
		var a, b any
		if json.Unmarshal(compact, &a) != nil || json.Unmarshal(got, &b) != nil {
			t.Fatalf("invalid JSON: %s / %s", compact, got)
		}
		if ja, _ := json.Marshal(a); string(ja) != mustMarshal(b) {
			t.Errorf("compact and python styles differ in value: %s vs %s", compact, got)
		}
	}
}

func mustMarshal(v any) string { b, _ := json.Marshal(v); return string(b) }

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b := make([]byte, len(s)/2)
	for i := range b {
		var x byte
		for _, c := range s[2*i : 2*i+2] {
			x <<= 4
			switch {
			case c >= '0' && c <= '9':
				x |= byte(c - '0')
			default:
				x |= byte(c-'a') + 10
			}
		}
		b[i] = x
	}
	return b
}

func TestDecodeRules(t *testing.T) {
	// A repeated key keeps its first position and takes the last value,
	// as a Python dict built by msgpack does.
	dup := []byte("\x83\xa1a\x01\xa1b\x02\xa1a\x03")
	v, err := DecodeMsgpack(dup)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := AppendJSON(nil, &v, StyleCompact); string(got) != `{"a":3,"b":2}` {
		t.Errorf("duplicate keys: %s", got)
	}
	bad := map[string][]byte{
		"int key":       {0x81, 0x01, 0x02},
		"bin value":     {0xc4, 0x01, 0x00},
		"ext value":     {0xd4, 0x01, 0x00},
		"invalid utf8":  {0xa2, 0xff, 0xfe},
		"trailing":      {0x01, 0x02},
		"truncated":     {0x92, 0x01},
		"huge map":      {0xdf, 0xff, 0xff, 0xff, 0xff},
		"huge string":   {0xdb, 0xff, 0xff, 0xff, 0xff},
		"reserved 0xc1": {0xc1},
		"empty":         {},
		"deep":          []byte(strings.Repeat("\x91", 300) + "\xc0"),
	}
	for name, b := range bad {
		if _, err := DecodeMsgpack(b); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		v := Value{kind: kindFloat, f: f}
		if _, err := AppendJSON(nil, &v, StylePython); err == nil {
			t.Errorf("%v encoded", f)
		}
	}
}

// FuzzDecodeMsgpack: any input either fails cleanly or yields a value
// whose JSON, in both styles, is valid and means the same.
func FuzzDecodeMsgpack(f *testing.F) {
	f.Add([]byte("\x82\xa4type\xb1send_notification\xa7message\x81\xa2id\x01"))
	f.Add([]byte("\x83\xa1a\x01\xa1b\x02\xa1a\x03"))
	f.Add([]byte{0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a})
	f.Add([]byte{0xdc, 0x00, 0x02, 0xca, 0x3f, 0x80, 0, 0, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte("\xa6caf\xc3\xa9!"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeMsgpack(b)
		if err != nil {
			return
		}
		p, perr := AppendJSON(nil, &v, StylePython)
		c, cerr := AppendJSON(nil, &v, StyleCompact)
		if (perr == nil) != (cerr == nil) {
			t.Fatalf("styles disagree: %v / %v", perr, cerr)
		}
		if perr != nil {
			return
		}
		if !json.Valid(p) || !json.Valid(c) {
			t.Fatalf("invalid JSON %q / %q", p, c)
		}
		var a, bb any
		json.Unmarshal(p, &a)
		json.Unmarshal(c, &bb)
		if mustMarshal(a) != mustMarshal(bb) {
			t.Fatalf("styles differ: %s vs %s", p, c)
		}
	})
}
