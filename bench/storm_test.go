package bench_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldrt/herald/bench"
	"github.com/heraldrt/herald/internal/heraldtest"
	"github.com/heraldrt/herald/internal/redistest"
)

// TestStormMovesEveryoneWithoutLoss runs the storm scenario against three
// real Herald processes on a real redis-server: 60 WS + 30 SSE resuming
// clients on the victim, broadcast and per-user publishing through the
// survivors, then the victim is sent SIGTERM (drain over a 1 s reconnect
// window) and, on fresh nodes, SIGKILL. Everyone must be back on the
// survivors, spread over both, with nothing refused, lost or duplicated.
func TestStormMovesEveryoneWithoutLoss(t *testing.T) {
	for _, sig := range []string{"term", "kill"} {
		t.Run(sig, func(t *testing.T) {
			rd := redistest.Start(t)
			cfg := fmt.Sprintf("auth:\n  jwt:\n    hmac_secret: %q\napi:\n  key: %q\nlog:\n  level: warn\n"+
				"fanout:\n  broker: redis\n  redis:\n    shards: [%q]\n", testSecret, testAPIKey, rd.Addr())
			var nodes []*heraldtest.Node
			for range 3 {
				nodes = append(nodes, heraldtest.StartNode(t, cfg, "HERALD_SERVER__RECONNECT_WINDOW=1s"))
			}
			victim, survivors := nodes[0], nodes[1:]
			o := bench.Options{
				Scenario: bench.ScenarioStorm, Targets: []string{victim.Addr()},
				StormTargets: []string{survivors[0].Addr(), survivors[1].Addr()},
				PIDs:         []int{survivors[0].PID(), survivors[1].PID()},
				StormPID:     victim.PID(), StormSignal: sig, StormAfter: time.Second, StormWait: 15 * time.Second,
				Secret: testSecret, APIKey: testAPIKey, WS: 60, SSE: 30, BroadcastRate: 20, UserRate: 100,
				Settle: 100 * time.Millisecond, Drain: 10 * time.Second, Timeout: 10 * time.Second,
				ReconnectDelay: 300 * time.Millisecond, RedisAddrs: []string{rd.Addr()},
			}
			res, err := bench.Run(context.Background(), o)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			rr := res.Herald
			t.Logf("storm %+v errors %v delivery %+v published %+v", *rr.Storm, rr.Errors, rr.Total, rr.Published)
			if rc := rr.Redis; rc != nil {
				t.Logf("redis: %.2f per connect %v; %.2f per reconnect %v", rc.RampPerConnect, rc.Ramp, rc.StormPerReconnect, rc.Storm)
			}
			st := rr.Storm
			if st == nil {
				t.Fatal("no storm result")
			}
			if rr.Ramp["ws"].OK != 60 || rr.Ramp["sse"].OK != 30 {
				t.Fatalf("ramp: ws %+v sse %+v errors %v", rr.Ramp["ws"], rr.Ramp["sse"], rr.Errors)
			}
			if st.Connections != 90 || st.Back != 90 || !st.AllBack || st.Back99S < 0 || st.Back100S < st.Back99S {
				t.Fatalf("storm %+v", st)
			}
			for _, s := range o.StormTargets {
				if st.PerSurvivor[s] < 30 {
					t.Fatalf("survivor %s got %d of 90: %v", s, st.PerSurvivor[s], st.PerSurvivor)
				}
			}
			if len(st.Refusals) != 0 {
				t.Fatalf("refusals %v", st.Refusals)
			}
			if len(st.VictimCloses) == 0 {
				t.Fatalf("no victim closes recorded; errors %v", rr.Errors)
			}
			if sig == "term" {
				// Herald drains: WebSockets get close 1012 after a disconnect event.
				if st.VictimCloses["close 1012 shutdown (disconnect event: shutdown)"] != 60 {
					t.Fatalf("victim closes %v", st.VictimCloses)
				}
			}
			if st.PeakRSSKiB < st.BaseRSSKiB || st.BaseRSSKiB == 0 {
				t.Fatalf("survivor rss %d → %d", st.BaseRSSKiB, st.PeakRSSKiB)
			}
			if rr.Published.OK == 0 || rr.Published.Failed != 0 {
				t.Fatalf("published %+v errors %v", rr.Published, rr.Errors)
			}
			if rr.Broadcast.Expected == 0 || rr.User.Expected == 0 {
				t.Fatalf("nothing expected: %+v %+v", rr.Broadcast, rr.User)
			}
			if d := rr.Total; d.Lost != 0 || d.Duplicates != 0 || d.Delivered != d.Expected {
				t.Fatalf("delivery %+v (broadcast %+v user %+v), errors %v", d, rr.Broadcast, rr.User, rr.Errors)
			}
			if rc := rr.Redis; rc == nil || rc.RampPerConnect < 1 || rc.StormPerReconnect <= 0 || rc.Ramp["evalsha"] < 90 {
				t.Fatalf("redis commands %+v", rr.Redis)
			}
			if len(rr.Errors) != 0 {
				t.Fatalf("errors %v", rr.Errors)
			}
		})
	}
}
