package compat

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"strings"
	"sync"
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

// msgpackOracle is Python's msgpack + json.dumps (the channels_redis
// stack) running testdata/msgpack_oracle.py, shared by the fuzz calls of
// one process.
type msgpackOracle struct {
	mu  sync.Mutex
	in  io.WriteCloser
	out *bufio.Reader
}

var (
	oracleOnce sync.Once
	oracle     *msgpackOracle
	oracleErr  error
)

// pythonOracle starts the oracle once per process; nil when no Python
// with msgpack exists (a failure under CI=true).
func pythonOracle(t *testing.T) *msgpackOracle {
	oracleOnce.Do(func() {
		py := ""
		for _, p := range []string{"/usr/bin/python3", "python3"} {
			if exec.Command(p, "-c", "import msgpack").Run() == nil {
				py = p
				break
			}
		}
		if py == "" {
			oracleErr = errors.New("no python3 with msgpack (apt-get install python3-msgpack)")
			return
		}
		cmd := exec.Command(py, "testdata/msgpack_oracle.py")
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if oracleErr = cmd.Start(); oracleErr != nil {
			return
		}
		oracle = &msgpackOracle{in: in, out: bufio.NewReader(out)}
	})
	if oracleErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("msgpack oracle: %v", oracleErr)
		}
		return nil
	}
	return oracle
}

// decode returns json.dumps(msgpack.unpackb(b)) and whether Python
// accepted b.
func (o *msgpackOracle) decode(t *testing.T, b []byte) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	if _, err := o.in.Write(append(n[:], b...)); err != nil {
		t.Fatalf("msgpack oracle: %v", err)
	}
	line, err := o.out.ReadString('\n')
	if err != nil {
		t.Fatalf("msgpack oracle: %v", err)
	}
	line = strings.TrimSuffix(line, "\n")
	if text, ok := strings.CutPrefix(line, "OK "); ok {
		return text, true
	}
	return line, false
}

// FuzzDecodeMsgpack: Herald's decoder must agree with the one it replaces.
// Every input is also decoded by Python's msgpack.unpackb(raw=False) and
// written by json.dumps, as channels_redis and the Django consumer do: both
// accept or both refuse, and when both accept, Herald's StylePython JSON is
// byte for byte json.dumps's. (Herald's one extra limit, nesting deeper than
// maxDepth, may refuse what Python accepts.) The compact style must mean the
// same as the Python style.
func FuzzDecodeMsgpack(f *testing.F) {
	f.Add([]byte("\x82\xa4type\xb1send_notification\xa7message\x81\xa2id\x01"))
	f.Add([]byte("\x83\xa1a\x01\xa1b\x02\xa1a\x03"))
	f.Add([]byte{0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a})
	f.Add([]byte{0xdc, 0x00, 0x02, 0xca, 0x3f, 0x80, 0, 0, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte("\xa6caf\xc3\xa9!"))
	f.Add([]byte("\xa4\xf0\x9f\x98\x80"))                               // U+1F600: a surrogate pair in json.dumps
	f.Add([]byte("\xa3\xed\xa0\x80"))                                   // an encoded surrogate: not UTF-8
	f.Add([]byte{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // uint64 max
	f.Add([]byte{0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0})                   // NaN
	f.Add([]byte{0xca, 0x3d, 0xcc, 0xcc, 0xcd})                         // float32 0.1
	f.Add([]byte{0xcb, 0x44, 0x9c, 0x4e, 0x3f, 0x2f, 0x3c, 0x12, 0x61}) // 1.6e22: exponent form
	f.Add([]byte("\x81\x01\xa1x"))                                      // int key
	f.Add([]byte("\x81\xc4\x01k\xa1x"))                                 // bytes key
	f.Add([]byte("\xc4\x02ab"))                                         // bin
	f.Add([]byte("\xd6\xff\x00\x00\x00\x01"))                           // timestamp extension
	f.Add([]byte("\x91\x91\x91\xc0"))
	f.Add([]byte("\xa1\x1f\xa1\x7f")) // control characters, trailing data
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeMsgpack(b)
		var p []byte
		if err == nil {
			p, err = AppendJSON(nil, &v, StylePython)
		}
		if o := pythonOracle(t); o != nil {
			want, ok := o.decode(t, b)
			switch {
			case err == nil && !ok:
				t.Fatalf("Herald accepts %x as %s, Python refuses it (%s)", b, p, want)
			case err != nil && ok && !strings.Contains(err.Error(), "nested deeper"):
				t.Fatalf("Herald refuses %x (%v), Python accepts it as %s", b, err, want)
			case err == nil && string(p) != want:
				t.Fatalf("%x: Herald writes %s, json.dumps writes %s", b, p, want)
			}
		}
		if err != nil {
			return
		}
		c, cerr := AppendJSON(nil, &v, StyleCompact)
		if cerr != nil {
			t.Fatalf("compact style fails where the Python style does not: %v", cerr)
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
