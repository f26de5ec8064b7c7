package compat

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldrt/herald/internal/redistest"
)

// guideEvent is a group_send event shaped like the guide's progress
// notification.
func guideEvent(t testing.TB, member string, i int) []byte {
	ev := map[string]any{"type": "send_notification", "message": map[string]any{
		"type": "oracle_upload_progress", "transaction_id": 602, "step": "Interface Loader",
		"step_number": 3, "total_steps": 5, "message": "Running Interface Loader to process data",
		"status": "processing", "seq": i, "timestamp": "2025-11-18T12:31:15.123456"}}
	if member != "" {
		ev["__asgi_channel__"] = []string{member}
	}
	return mustPack(t, ev)
}

// pubsubWindow is how many messages BenchmarkIngest's pub/sub publisher
// lets run ahead of the ingest (~1.5 MB: well under Redis's pub/sub output
// buffer limit).
const pubsubWindow = 5000

// BenchmarkIngest measures how many messages per second one node ingests
// and publishes to an in-memory broker: b.N messages are written to Redis
// the way the layer writes them (core: ZADD into Herald's inbox with the
// 12-byte prefix; pubsub: PUBLISH on the group channel, at most
// pubsubWindow ahead of the ingest), then the clock runs until all are
// published.
//
//	go test -run '^$' -bench Ingest -benchtime 20000x ./compat/
func BenchmarkIngest(b *testing.B) {
	for _, layer := range []string{"core", "pubsub"} {
		b.Run(layer, func(b *testing.B) {
			srv := redistest.Start(b)
			col := newCollector(b, "user:42")
			cfg := testConfig(layer, srv)
			in := startIngest(b, cfg, col.broker)
			in.Interest("user:42")
			syncIngest(b, in)
			cl, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, DisableCache: true})
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			member := "herald!" + in.node + ".user_42"
			cmds := make(rueidis.Commands, 0, b.N)
			now := float64(time.Now().UnixMicro()) / 1e6
			for i := range b.N {
				if layer == "core" {
					m := fmt.Sprintf("%012d", i) + string(guideEvent(b, member, i))
					cmds = append(cmds, cl.B().Zadd().Key("asgiherald!").ScoreMember().ScoreMember(now+float64(i)*1e-6, m).Build())
				} else {
					cmds = append(cmds, cl.B().Publish().Channel("asgi__group__user_42").Message(string(guideEvent(b, "", i))).Build())
				}
			}
			b.ResetTimer()
			start := time.Now()
			for off := 0; off < len(cmds); off += 1000 {
				// Pub/sub is at-most-once: a subscriber that falls more than
				// Redis's client-output-buffer-limit (pubsub 32mb/8mb 60 s)
				// behind is disconnected and loses what was queued, as
				// channels_redis's own pub/sub layer would. Publishing is
				// paced so at most pubsubWindow messages are in flight:
				// the figure is sustained throughput, not a burst Redis
				// itself would cut.
				for layer == "pubsub" && off-col.count("user:42") > pubsubWindow {
					time.Sleep(100 * time.Microsecond)
				}
				for _, r := range cl.DoMulti(context.Background(), cmds[off:min(off+1000, len(cmds))]...) {
					if err := r.Error(); err != nil {
						b.Fatal(err)
					}
				}
			}
			col.wait(b, "user:42", b.N, time.Minute)
			el := time.Since(start)
			b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
			if st := in.Stats(); st.Published != uint64(b.N) {
				b.Fatalf("published %d of %d: %+v", st.Published, b.N, st)
			}
		})
	}
}

// TestPythonBurst times the real thing: a Python process sending
// HERALD_COMPAT_BURST rounds of the guide's 7 messages with group_send
// from one event loop, through each layer, until Herald published all.
//
//	HERALD_COMPAT_BURST=1000 go test -run TestPythonBurst -v ./compat/
func TestPythonBurst(t *testing.T) {
	rounds, _ := strconv.Atoi(os.Getenv("HERALD_COMPAT_BURST"))
	if rounds <= 0 {
		t.Skip("set HERALD_COMPAT_BURST=<rounds> to run")
	}
	py := pythonWith(t, "channels_redis", "asgiref", "msgpack")
	for _, layer := range []string{"core", "pubsub"} {
		t.Run(layer, func(t *testing.T) {
			srv := redistest.Start(t)
			col := newCollector(t, "user:42")
			in := startIngest(t, testConfig(layer, srv), col.broker)
			in.Interest("user:42")
			syncIngest(t, in)
			start := time.Now()
			want := groupSend(t, py, layer, []*redistest.Server{srv}, "user_42", 1, strconv.Itoa(rounds), "burst")
			sent := time.Since(start)
			col.wait(t, "user:42", len(want), 5*time.Minute)
			el := time.Since(start)
			t.Logf("%s: %d messages: Python sent in %s (%.0f msgs/s incl. interpreter start), Herald published all after %s (%.0f msgs/s)",
				layer, len(want), sent.Round(time.Millisecond), float64(len(want))/sent.Seconds(), el.Round(time.Millisecond), float64(len(want))/el.Seconds())
			if st := in.Stats(); st.Published != uint64(len(want)) || st.Dropped != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}
