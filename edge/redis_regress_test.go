package edge

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/redistest"
)

// TestRedisSnapshotRestoreThroughHerald is issue 12's reproduction through
// Herald: publish 1-20 to a user, SAVE, publish 21-40, SIGKILL the shard,
// restart it from the snapshot, publish 41-70. WebSocket and SSE clients
// that stayed connected must get stream_reset (reason epoch_changed) and
// then every one of 41-70 in order; the old code delivered only 61-70,
// silently.
func TestRedisSnapshotRestoreThroughHerald(t *testing.T) {
	srv := redistest.Start(t)
	nodes := redisNodes(t, 2, []string{srv.Addr()}, "e2esnap:")
	tok := token(t, "9", time.Hour)
	ws := nodes[1].mustWS(t, q("token", tok, "format", "envelope"))
	readWSJSON(t, ws)
	sse := nodes[1].mustSSE(t, q("token", tok), "")
	sse.next(t)

	publish := func(from, to int) {
		for i := from; i <= to; i++ {
			body := fmt.Sprintf(`{"user_id":"9","data":{"n":%d}}`, i)
			for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
				code, out := nodes[0].post(t, "/api/publish", testAPIKey, body)
				if code == 200 {
					break
				}
				if time.Since(start) > 15*time.Second {
					t.Fatalf("publish %d: %d %v", i, code, out)
				}
			}
		}
	}
	// next returns the next item of either client: ("reset", reason) or
	// ("msg", n).
	type item struct {
		kind   string
		n      int
		reason string
	}
	parse := func(raw []byte, envelope bool) item {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("bad message %q: %v", raw, err)
		}
		if m["type"] == "stream_reset" {
			r, _ := m["reason"].(string)
			return item{kind: "reset", reason: r}
		}
		d := m
		if envelope {
			d, _ = m["data"].(map[string]any)
		}
		n, ok := d["n"].(float64)
		if !ok {
			t.Fatalf("unexpected message %s", raw)
		}
		return item{kind: "msg", n: int(n)}
	}
	clients := []struct {
		name string
		next func() item
	}{
		{"ws", func() item { return parse(readWS(t, ws), true) }},
		{"sse", func() item { return parse([]byte(sse.next(t).Data), false) }},
	}
	expectRange := func(from, to int) {
		for _, c := range clients {
			for i := from; i <= to; i++ {
				if it := c.next(); it.kind != "msg" || it.n != i {
					t.Fatalf("%s: got %+v, want message %d", c.name, it, i)
				}
			}
		}
	}

	publish(1, 20)
	if _, err := redistest.Do(srv.Addr(), "SAVE"); err != nil {
		t.Fatal(err)
	}
	publish(21, 40)
	expectRange(1, 40)
	srv.RestartFromDisk()
	publish(41, 70)
	for _, c := range clients {
		it := c.next()
		if it.kind != "reset" || it.reason != "epoch_changed" {
			t.Fatalf("%s: after the shard went back to its snapshot got %+v, want stream_reset epoch_changed", c.name, it)
		}
	}
	expectRange(41, 70)
}
