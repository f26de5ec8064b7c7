package fanout

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// shardVectors are ShardIndex results that external publishers (see the
// Python function in docs/redis.md) must reproduce exactly.
var shardVectors = []struct {
	channel string
	want    map[int]int // shards → index
}{
	{"a", map[int]int{1: 0, 2: 1, 3: 2, 5: 2, 16: 12, 1000: 163}},
	{"news", map[int]int{1: 0, 2: 1, 3: 2, 5: 3, 16: 3, 1000: 81}},
	{"user:42", map[int]int{1: 0, 2: 1, 3: 1, 5: 1, 16: 15, 1000: 295}},
	{"room/lobby", map[int]int{1: 0, 2: 0, 3: 0, 5: 0, 16: 8, 1000: 236}},
	{"orders.eu-west", map[int]int{1: 0, 2: 1, 3: 1, 5: 4, 16: 12, 1000: 820}},
	{"chat@support", map[int]int{1: 0, 2: 0, 3: 2, 5: 2, 16: 11, 1000: 773}},
	{"k=v+1", map[int]int{1: 0, 2: 0, 3: 0, 5: 4, 16: 13, 1000: 37}},
	{"ticker:AAPL", map[int]int{1: 0, 2: 1, 3: 2, 5: 3, 16: 3, 1000: 966}},
	{strings.Repeat("x", 200), map[int]int{1: 0, 2: 0, 3: 0, 5: 0, 16: 6, 1000: 996}},
}

func TestShardIndexVectors(t *testing.T) {
	for _, v := range shardVectors {
		for n, want := range v.want {
			if got := ShardIndex(v.channel, n); got != want {
				t.Errorf("ShardIndex(%.20q, %d) = %d, want %d", v.channel, n, got, want)
			}
		}
	}
	if got := ShardIndex("a", 0); got != 0 {
		t.Errorf("ShardIndex with 0 shards = %d, want 0", got)
	}
}

// TestShardIndexPython checks the Python implementation shipped in
// testdata/publish.py (the same as in docs/redis.md) against Go.
func TestShardIndexPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	var chans []string
	for _, v := range shardVectors {
		chans = append(chans, v.channel)
	}
	for i := range 200 {
		chans = append(chans, fmt.Sprintf("chan-%d:%d", i, i*7919))
	}
	const prog = `
import sys
sys.path.insert(0, "testdata")
import publish
for line in sys.stdin.read().split("\n"):
    if line:
        print(" ".join(str(publish.shard_index(line, n)) for n in (1, 2, 3, 5, 16, 1000)))
`
	cmd := exec.Command(py, "-c", prog)
	cmd.Stdin = strings.NewReader(strings.Join(chans, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(chans) {
		t.Fatalf("python printed %d lines for %d channels:\n%s", len(lines), len(chans), out)
	}
	for i, ch := range chans {
		var want []string
		for _, n := range []int{1, 2, 3, 5, 16, 1000} {
			want = append(want, fmt.Sprint(ShardIndex(ch, n)))
		}
		if got := lines[i]; got != strings.Join(want, " ") {
			t.Errorf("channel %.20q: python %q, go %q", ch, got, strings.Join(want, " "))
		}
	}
}

func TestDecodePayload(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	cases := []struct {
		payload, tp, data string
	}{
		{`h2|7|42|1700000000000000000|55|` + tp + `{"a":"x|y"}`, tp, `{"a":"x|y"}`},
		{`h2|7|42|1700000000000000000|0|{"a":1}`, "", `{"a":1}`},
		// A traceparent holding "|" cannot move the data (issue 13 item 3).
		{`h2|7|42|1700000000000000000|10|x|INJECTED{"a":1}`, "x|INJECTED", `{"a":1}`},
		{`h2|7|42|1700000000000000000|3|a|b|c|`, "a|b", `|c|`},
		// Legacy payloads with a W3C-shaped or empty traceparent.
		{`h1|7|42|1700000000000000000|` + tp + `|{"a":"x|y"}`, tp, `{"a":"x|y"}`},
		{`h1|7|42|1700000000000000000||{"a":1}`, "", `{"a":1}`},
	}
	for _, c := range cases {
		m, err := decodePayload("c", c.payload)
		if err != nil {
			t.Fatalf("decodePayload(%q): %v", c.payload, err)
		}
		if m.Pos != (Position{7, 42}) || m.PublishedAt != 1700000000000000000 || m.TraceParent != c.tp || string(m.Data) != c.data || m.Channel != "c" {
			t.Fatalf("decodePayload(%q) = %+v", c.payload, m)
		}
	}
	for _, bad := range []string{"", "h3|1|1|1|0|{}", "h2|0|1|1|0|{}", "h2|1|0|1|0|{}", "h2|1|1|1|", "h2|x|1|1|0|{}",
		"h2|4294967296|1|1|0|{}", "h2|1|1|1|5|{}", "h2|1|1|1|-1|{}", "h2|1|1|1|x|{}",
		"h1|1|1|1|x|INJECTED|{}", "h1|0|1|1||{}"} {
		if _, err := decodePayload("c", bad); err == nil {
			t.Errorf("decodePayload(%q) succeeded", bad)
		}
	}
}

// encodePayload writes a payload as redis_publish.lua does.
func encodePayload(pos Position, ts int64, tp, data string) string {
	return fmt.Sprintf("h2|%d|%d|%d|%d|%s%s", pos.Epoch, pos.Offset, ts, len(tp), tp, data)
}

// FuzzDecodePayload: any payload decodes or is refused without panicking;
// whatever the script encodes decodes back to exactly its traceparent and
// data.
func FuzzDecodePayload(f *testing.F) {
	f.Add(uint32(7), uint64(42), int64(1), "x|INJECTED", `{"a":"x|y"}`, "h2|1|1|1|3|a|b")
	f.Add(uint32(1), uint64(1), int64(0), "", "", "h1|1|1|1||{}")
	f.Fuzz(func(t *testing.T, epoch uint32, off uint64, ts int64, tp, data, raw string) {
		decodePayload("c", raw)
		if epoch == 0 || off == 0 {
			return
		}
		p := encodePayload(Position{epoch, off}, ts, tp, data)
		m, err := decodePayload("c", p)
		if err != nil {
			t.Fatalf("decodePayload(%q): %v", p, err)
		}
		if m.Pos != (Position{epoch, off}) || m.PublishedAt != ts || m.TraceParent != tp || string(m.Data) != data {
			t.Fatalf("decodePayload(%q) = %+v", p, m)
		}
	})
}

// TestRedisPythonPublish publishes with testdata/publish.py (plain RESP
// over a socket, the example in docs/redis.md) to a 3-shard setup and
// checks that a RedisBroker subscriber receives it at the right position.
func TestRedisPythonPublish(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	_, addrs := startShards(t, 3)
	prefix := testPrefix(t)
	col := newCollector()
	b := newTestRedis(t, RedisConfig{Shards: addrs, Prefix: prefix}, col.handle)
	ctx := context.Background()
	for _, ch := range []string{"py:a", "py:b", "py:c", "py:d"} {
		if err := b.Subscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
		first, err := b.Publish(ctx, ch, []byte(`"go"`), PublishOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(py, "testdata/publish.py", strings.Join(addrs, ","), prefix, ch, `{"from":"python|x"}`).CombinedOutput()
		if err != nil {
			t.Fatalf("publish.py: %v\n%s", err, out)
		}
		want := fmt.Sprintf("%d %d 0", first.Pos.Epoch, first.Pos.Offset+1)
		if got := strings.TrimSpace(string(out)); got != want {
			t.Fatalf("publish.py printed %q, want %q", got, want)
		}
		ms := col.waitFor(t, ch, 5*time.Second, atLeast(2))
		m := ms[1]
		if m.Pos != (Position{first.Pos.Epoch, first.Pos.Offset + 1}) || string(m.Data) != `{"from":"python|x"}` {
			t.Fatalf("received %s %s", m.Pos, m.Data)
		}
		if d := time.Since(time.Unix(0, m.PublishedAt)); d < 0 || d > time.Minute {
			t.Fatalf("PublishedAt %d", m.PublishedAt)
		}
	}
	// Idempotency keys work from outside too.
	args := []string{"testdata/publish.py", strings.Join(addrs, ","), prefix, "py:a", `1`, "key-1"}
	out1, err1 := exec.Command(py, args...).CombinedOutput()
	out2, err2 := exec.Command(py, args...).CombinedOutput()
	f1, f2 := strings.Fields(string(out1)), strings.Fields(string(out2))
	if err1 != nil || err2 != nil || len(f1) != 3 || len(f2) != 3 || f1[1] != f2[1] || f2[2] != "1" {
		t.Fatalf("idempotent publish.py: %q %v / %q %v", out1, err1, out2, err2)
	}
}
