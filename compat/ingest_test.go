package compat

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/redistest"
)

// checkSequence asserts that msgs are exactly the guide's sequence sent by
// group_send.py: byte for byte the json.dumps output, in order.
func checkSequence(t *testing.T, msgs []*fanout.Message, want []string) {
	t.Helper()
	if len(msgs) != len(want) {
		t.Fatalf("got %d messages, want %d", len(msgs), len(want))
	}
	types := []string{}
	for i, m := range msgs {
		if string(m.Data) != want[i] {
			t.Errorf("message %d:\n got %s\nwant %s", i, m.Data, want[i])
		}
		if m.Pos.Offset != msgs[0].Pos.Offset+uint64(i) {
			t.Errorf("message %d at offset %d, want %d", i, m.Pos.Offset, msgs[0].Pos.Offset+uint64(i))
		}
		var v struct {
			Type string `json:"type"`
			Step int    `json:"step_number"`
		}
		if err := json.Unmarshal(m.Data, &v); err != nil {
			t.Fatalf("message %d is not JSON: %v", i, err)
		}
		types = append(types, v.Type+":"+strconv.Itoa(v.Step))
	}
	wantTypes := "oracle_upload_started:0 oracle_upload_progress:1 oracle_upload_progress:2 oracle_upload_progress:3 " +
		"oracle_upload_progress:4 oracle_upload_progress:5 oracle_upload_completed:0"
	if got := strings.Join(types, " "); got != wantTypes {
		t.Errorf("sequence %s, want %s", got, wantTypes)
	}
}

// TestRealGroupSend runs the guide's Celery-style group_send through the
// real channels_redis layers against real Redis servers, with one host and
// with two (then user 42's core group is on host 0, user 7's and Herald's
// inbox on host 1; the pubsub group channels the other way round), and checks Herald's broker receives the sequence.
func TestRealGroupSend(t *testing.T) {
	py := pythonWith(t, "channels_redis", "asgiref", "msgpack")
	for _, layer := range []string{"core", "pubsub"} {
		for _, nhosts := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/%dhosts", layer, nhosts), func(t *testing.T) {
				var hosts []*redistest.Server
				for range nhosts {
					hosts = append(hosts, redistest.Start(t))
				}
				col := newCollector(t, "user:42", "user:7")
				in := startIngest(t, testConfig(layer, hosts...), col.broker)
				in.Interest("user:42")
				in.Interest("user:7")
				in.Interest("user:unmapped@x") // not a valid group name: ignored
				syncIngest(t, in)
				if nhosts == 2 {
					checkPlacement(t, layer, hosts)
				}
				want42 := groupSend(t, py, layer, hosts, "user_42", 602)
				want7 := groupSend(t, py, layer, hosts, "user_7", 603)
				checkSequence(t, col.wait(t, "user:42", len(want42), 10*time.Second), want42)
				checkSequence(t, col.wait(t, "user:7", len(want7), 10*time.Second), want7)
				// A group nobody here listens to is not received (pubsub) or
				// not joined (core).
				groupSend(t, py, layer, hosts, "user_99", 1)
				time.Sleep(200 * time.Millisecond)
				st := in.Stats()
				if st.Published != 14 || st.Malformed != 0 || st.Dropped != 0 {
					t.Errorf("stats %+v, want 14 published and nothing malformed or dropped", st)
				}
			})
		}
	}
}

// checkPlacement verifies, in Redis, that the layer's own host selection
// put each group where Herald looked for it.
func checkPlacement(t *testing.T, layer string, hosts []*redistest.Server) {
	t.Helper()
	if layer == "core" {
		for _, g := range []string{"user_42", "user_7"} {
			h := hosts[ConsistentHash(g, 2)]
			n, err := redistest.Do(h.Addr(), "ZCARD", "asgi:group:"+g)
			if err != nil || n != int64(1) {
				t.Errorf("group %s on host %d: ZCARD %v %v, want 1 member", g, ConsistentHash(g, 2), n, err)
			}
		}
		return
	}
	for _, g := range []string{"user_42", "user_7"} {
		name := "asgi__group__" + g
		h := hosts[ConsistentHash(name, 2)]
		r, err := redistest.Do(h.Addr(), "PUBSUB", "NUMSUB", name)
		if err != nil || fmt.Sprint(r) != fmt.Sprintf("[%s 1]", name) {
			t.Errorf("pubsub %s on host %d: NUMSUB %v %v", name, ConsistentHash(name, 2), r, err)
		}
	}
}

// TestConsistentHashMatchesPython compares ConsistentHash with
// channels_redis.utils._consistent_hash.
func TestConsistentHashMatchesPython(t *testing.T) {
	py := pythonWith(t, "channels_redis")
	var names []string
	for i := range 300 {
		names = append(names, "user_"+strconv.Itoa(i), "asgi__group__user_"+strconv.Itoa(i))
	}
	names = append(names, "herald!", "broadcast", "ünïcode", "")
	js, _ := json.Marshal(names)
	script := `import json, sys
from channels_redis.utils import _consistent_hash
names = json.loads(sys.argv[1])
print(json.dumps([[_consistent_hash(n, r) for r in (1, 2, 3, 5, 7)] for n in names]))`
	out, err := exec.Command(py, "-c", script, string(js)).Output()
	if err != nil {
		t.Fatal(err)
	}
	var want [][]int
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		for j, r := range []int{1, 2, 3, 5, 7} {
			if got := ConsistentHash(n, r); got != want[i][j] {
				t.Errorf("ConsistentHash(%q, %d) = %d, Python %d", n, r, got, want[i][j])
			}
		}
	}
}

// TestMultiNodeOnce runs two ingests (two Herald nodes) sharing one broker,
// both interested in user 42: every message is published exactly once.
func TestMultiNodeOnce(t *testing.T) {
	py := pythonWith(t, "channels_redis", "asgiref", "msgpack")
	for _, layer := range []string{"core", "pubsub"} {
		t.Run(layer, func(t *testing.T) {
			hosts := []*redistest.Server{redistest.Start(t), redistest.Start(t)}
			col := newCollector(t, "user:42")
			a := startIngest(t, testConfig(layer, hosts...), col.broker)
			b := startIngest(t, testConfig(layer, hosts...), col.broker)
			a.Interest("user:42")
			b.Interest("user:42")
			syncIngest(t, a)
			syncIngest(t, b)
			if layer == "core" {
				h := hosts[ConsistentHash("user_42", 2)]
				if n, _ := redistest.Do(h.Addr(), "ZCARD", "asgi:group:user_42"); n != int64(2) {
					t.Fatalf("group members %v, want one per node", n)
				}
			}
			want := groupSend(t, py, layer, hosts, "user_42", 602, "3")
			msgs := col.wait(t, "user:42", len(want), 10*time.Second)
			time.Sleep(300 * time.Millisecond)
			if n := col.count("user:42"); n != len(want) {
				t.Fatalf("%d messages published, want %d (duplicates)", n, len(want))
			}
			for i, m := range msgs {
				if string(m.Data) != want[i] {
					t.Errorf("message %d out of order or wrong:\n got %s\nwant %s", i, m.Data, want[i])
				}
			}
			sa, sb := a.Stats(), b.Stats()
			if sa.Published+sb.Published != uint64(len(want)) {
				t.Errorf("published %d+%d, want %d", sa.Published, sb.Published, len(want))
			}
			if layer == "core" && sa.Leading+sb.Leading != 2 {
				t.Errorf("leading %d+%d, want one reader per host", sa.Leading, sb.Leading)
			}
			if layer == "pubsub" && sa.Duplicates+sb.Duplicates != uint64(len(want)) {
				t.Errorf("duplicates %d+%d, want %d (each node received every message)", sa.Duplicates, sb.Duplicates, len(want))
			}
		})
	}
}

// TestPubSubRepeatsAreNotDuplicates sends the same payload twice: both are
// delivered, even with two nodes receiving both.
func TestPubSubRepeatsAreNotDuplicates(t *testing.T) {
	srv := redistest.Start(t)
	col := newCollector(t, "broadcast")
	a := startIngest(t, testConfig("pubsub", srv), col.broker)
	b := startIngest(t, testConfig("pubsub", srv), col.broker)
	a.Interest("broadcast")
	b.Interest("broadcast")
	syncIngest(t, a)
	syncIngest(t, b)
	payload := string(mustPack(t, map[string]any{"type": "send_notification", "message": "maintenance at 22:00"}))
	for range 2 {
		if _, err := redistest.Do(srv.Addr(), "PUBLISH", "asgi__group__broadcast", payload); err != nil {
			t.Fatal(err)
		}
	}
	col.wait(t, "broadcast", 2, 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	if n := col.count("broadcast"); n != 2 {
		t.Fatalf("%d messages, want 2", n)
	}
}

// TestMalformedIsCountedNotFatal feeds garbage through both layers, then a
// good message that must still arrive.
func TestMalformedIsCountedNotFatal(t *testing.T) {
	good := mustPack(t, map[string]any{"type": "send_notification", "message": map[string]any{"ok": true}})
	garbage := [][]byte{nil, {0xc1}, {0x81, 0x01, 0x02}, {0xdf, 0xff, 0xff, 0xff, 0xff}, []byte("\x82\xa4type\xa1x\xa7message\xc4\x01\x00"),
		append(append([]byte{}, good...), 0x00), {0x92, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1}}
	t.Run("core", func(t *testing.T) {
		srv := redistest.Start(t)
		col := newCollector(t, "user:1")
		in := startIngest(t, testConfig("core", srv), col.broker)
		in.Interest("user:1")
		syncIngest(t, in)
		member := "herald!" + in.node + ".user_1"
		now := strconv.FormatFloat(float64(time.Now().UnixMicro())/1e6, 'f', 6, 64)
		for i, g := range garbage {
			m := fmt.Sprintf("%012d", i) + string(g)
			if _, err := redistest.Do(srv.Addr(), "ZADD", "asgiherald!", now, m); err != nil {
				t.Fatal(err)
			}
		}
		redistest.Do(srv.Addr(), "ZADD", "asgiherald!", now, "short")
		ok := withChannel(t, good, member)
		redistest.Do(srv.Addr(), "ZADD", "asgiherald!", now, "123456789012"+string(ok))
		msgs := col.wait(t, "user:1", 1, 5*time.Second)
		if string(msgs[0].Data) != `{"ok": true}` {
			t.Fatalf("got %s", msgs[0].Data)
		}
		if st := in.Stats(); st.Malformed < uint64(len(garbage)) {
			t.Errorf("malformed %d, want >= %d", st.Malformed, len(garbage))
		}
	})
	t.Run("pubsub", func(t *testing.T) {
		srv := redistest.Start(t)
		col := newCollector(t, "user:1")
		in := startIngest(t, testConfig("pubsub", srv), col.broker)
		in.Interest("user:1")
		syncIngest(t, in)
		for _, g := range garbage {
			redistest.Do(srv.Addr(), "PUBLISH", "asgi__group__user_1", string(g))
		}
		redistest.Do(srv.Addr(), "PUBLISH", "asgi__group__user_1", string(good))
		msgs := col.wait(t, "user:1", 1, 5*time.Second)
		if string(msgs[0].Data) != `{"ok": true}` {
			t.Fatalf("got %s", msgs[0].Data)
		}
		if st := in.Stats(); st.Malformed != uint64(len(garbage)) {
			t.Errorf("malformed %d, want %d", st.Malformed, len(garbage))
		}
	})
}

// TestCoreMembership checks group_add semantics: the member is written
// with the current time, refreshed before group_expiry, removed on Release
// (no linger), and expired messages are dropped.
func TestCoreMembership(t *testing.T) {
	srv := redistest.Start(t)
	col := newCollector(t, "user:5")
	cfg := testConfig("core", srv)
	cfg.GroupExpiry = 4 * time.Second // refresh every second
	cfg.Linger = 0
	in := startIngest(t, cfg, col.broker)
	in.Interest("user:5")
	syncIngest(t, in)
	member := "herald!" + in.node + ".user_5"
	score := func() float64 {
		r, err := redistest.Do(srv.Addr(), "ZSCORE", "asgi:group:user_5", member)
		if err != nil || r == nil {
			return 0
		}
		f, _ := strconv.ParseFloat(fmt.Sprint(r), 64)
		return f
	}
	first := score()
	if first == 0 {
		t.Fatal("not a member after Interest")
	}
	ttl, _ := redistest.Do(srv.Addr(), "TTL", "asgi:group:user_5")
	if ttl.(int64) <= 0 || ttl.(int64) > 4 {
		t.Errorf("group key TTL %v, want group_expiry", ttl)
	}
	time.Sleep(2500 * time.Millisecond)
	if s := score(); s <= first {
		t.Errorf("membership not refreshed: score %f then %f", first, s)
	}
	// An expired message (sent 2 minutes ago) is dropped, not delivered.
	old := strconv.FormatFloat(float64(time.Now().Add(-2*time.Minute).Unix()), 'f', 0, 64)
	ev := withChannel(t, mustPack(t, map[string]any{"type": "send_notification", "message": 1}), member)
	redistest.Do(srv.Addr(), "ZADD", "asgiherald!", old, "abcdefghijkl"+string(ev))
	deadline := time.Now().Add(3 * time.Second)
	for in.Stats().Expired == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := in.Stats(); st.Expired != 1 || col.count("user:5") != 0 {
		t.Errorf("expired message: stats %+v, delivered %d", st, col.count("user:5"))
	}
	in.Release("user:5")
	syncIngest(t, in)
	if score() != 0 {
		t.Error("still a member after Release without linger")
	}
}

func TestCloseLeavesGroups(t *testing.T) {
	srv := redistest.Start(t)
	col := newCollector(t)
	in, err := NewIngest(testConfig("core", srv), col.broker.Publish, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	in.Interest("user:5")
	syncIngest(t, in)
	in.Close()
	if n, _ := redistest.Do(srv.Addr(), "ZCARD", "asgi:group:user_5"); n != int64(0) {
		t.Errorf("%v members after Close", n)
	}
	if n, _ := redistest.Do(srv.Addr(), "EXISTS", "asgiherald!$herald-lease"); n != int64(0) {
		t.Error("lease kept after Close")
	}
}

var _ = context.Background

// TestCoreMembershipsRestoredAfterFlush: FLUSHALL on the channels Redis
// (as a restart without persistence or a failover to an empty replica)
// removes Herald's group memberships; they are written again within a few
// seconds, long before the group_expiry/4 refresh, and counted once.
func TestCoreMembershipsRestoredAfterFlush(t *testing.T) {
	srv := redistest.Start(t)
	col := newCollector(t, "user:5")
	in := startIngest(t, testConfig("core", srv), col.broker) // group_expiry 1 day: refresh hourly
	in.Interest("user:5")
	syncIngest(t, in)
	member := "herald!" + in.node + ".user_5"
	isMember := func() bool {
		r, err := redistest.Do(srv.Addr(), "ZSCORE", "asgi:group:user_5", member)
		return err == nil && r != nil
	}
	if !isMember() {
		t.Fatal("not a member after Interest")
	}
	// Let the first check see the marker (the initial write is no loss).
	time.Sleep(1500 * time.Millisecond)
	if st := in.Stats(); st.Restored != 0 {
		t.Fatalf("restored %d before any flush", st.Restored)
	}
	if _, err := redistest.Do(srv.Addr(), "FLUSHALL"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for !isMember() {
		if time.Since(start) > 5*time.Second {
			t.Fatal("membership not written again within 5s of FLUSHALL")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("membership back %v after FLUSHALL", time.Since(start).Round(time.Millisecond))
	if ttl, _ := redistest.Do(srv.Addr(), "TTL", "asgi:group:user_5"); ttl.(int64) <= 0 {
		t.Errorf("group key TTL %v after the rewrite, want group_expiry", ttl)
	}
	deadline := time.Now().Add(3 * time.Second)
	for in.Stats().Restored != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := in.Stats(); st.Restored != 1 {
		t.Errorf("restored %d, want 1", st.Restored)
	}
	in.Close()
	if n, _ := redistest.Do(srv.Addr(), "KEYS", "asgiherald!$herald-node.*"); len(n.([]any)) != 0 {
		t.Errorf("node marker kept after Close: %v", n)
	}
}

// TestPubSubRepeatAfterRestart: an identical payload sent again after a
// node restart is a new message, not a copy: the broker still holds the
// idempotency key the first one left ("#1"), and the restarted node's
// counter starts afresh. With two nodes (one restarted, one not) the
// repeat is still published exactly once.
func TestPubSubRepeatAfterRestart(t *testing.T) {
	srv := redistest.Start(t)
	col := newCollector(t, "user:78")
	top := WithTop(func(ctx context.Context, ch string) (fanout.Position, error) {
		res, err := col.broker.History(ctx, ch, fanout.Position{}, 0)
		return res.Top, err
	})
	start := func() *Ingest {
		t.Helper()
		in, err := NewIngest(testConfig("pubsub", srv), col.broker.Publish, testLog(t), top)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Close() })
		in.Interest("user:78")
		syncIngest(t, in)
		return in
	}
	payload := string(mustPack(t, map[string]any{"type": "send_notification",
		"message": map[string]any{"type": "maintenance", "at": "22:00"}}))
	send := func() {
		t.Helper()
		if _, err := redistest.Do(srv.Addr(), "PUBLISH", "asgi__group__user_78", payload); err != nil {
			t.Fatal(err)
		}
	}
	a := start()
	send()
	col.wait(t, "user:78", 1, 5*time.Second)
	a.Close() // the node restarts
	a = start()
	send()
	col.wait(t, "user:78", 2, 5*time.Second)
	// A second node joins; the first restarts again: the third send is
	// received by both and published once.
	b := start()
	a.Close()
	a = start()
	send()
	col.wait(t, "user:78", 3, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	if n := col.count("user:78"); n != 3 {
		t.Fatalf("%d messages, want 3 (one per send)", n)
	}
	if sa, sb := a.Stats(), b.Stats(); sa.Published+sb.Published != 1 || sa.Duplicates+sb.Duplicates != 1 {
		t.Errorf("third send: published %d+%d, duplicates %d+%d, want 1 and 1", sa.Published, sb.Published, sa.Duplicates, sb.Duplicates)
	}
}
