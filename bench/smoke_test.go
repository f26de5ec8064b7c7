package bench_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/heraldrt/herald/bench"
	"github.com/heraldrt/herald/bench/floor"
	"github.com/heraldrt/herald/bench/floor/floortest"
	"github.com/heraldrt/herald/internal/edgetest"
	"github.com/heraldrt/herald/internal/heraldtest"
)

const (
	testSecret = "bench-test-secret-0123456789abcdef0123"
	testAPIKey = "bench-test-api-key-0123456789"
)

// startHerald runs a Herald node (memory broker) on a loopback port.
func startHerald(t *testing.T) string {
	t.Helper()
	cfg := heraldtest.Config(testSecret, testAPIKey)
	cfg.Log.Level = "warn"
	n := edgetest.Start(t, cfg, edgetest.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return n.Addr
}

func startFloor(t *testing.T, opts floor.Options) string {
	_, addr := floortest.Start(t, opts)
	return addr
}

func smokeOptions(target string) bench.Options {
	return bench.Options{
		Targets: []string{target}, Secret: testSecret, APIKey: testAPIKey,
		WS: 50, SSE: 50, Settle: 100 * time.Millisecond, Drain: 10 * time.Second,
		Duration: 20 * time.Second, SrcBase: "127.0.0.2", PerIP: 40, Timeout: 10 * time.Second,
	}
}

// run runs the tool with o, failing the test on an error.
func run(t *testing.T, o bench.Options) *bench.Result {
	t.Helper()
	res, err := bench.Run(context.Background(), o)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return res
}

// heraldAndFloor returns res's runs against Herald and the floor, failing
// the test when either is missing.
func heraldAndFloor(t *testing.T, res *bench.Result) []*bench.RunResult {
	t.Helper()
	for _, rr := range []*bench.RunResult{res.Herald, res.Floor} {
		if rr == nil {
			t.Fatal("missing run result")
		}
	}
	return []*bench.RunResult{res.Herald, res.Floor}
}

// TestSmokeBroadcastHeraldAndFloor runs the tool against a real Herald and
// the floor: 50 WS + 50 SSE, 20 broadcast messages published in order,
// nothing lost, duplicated or reordered on either.
func TestSmokeBroadcastHeraldAndFloor(t *testing.T) {
	o := smokeOptions(startHerald(t))
	o.FloorTargets = []string{startFloor(t, floor.Options{})}
	o.Scenario, o.BroadcastRate, o.Messages = bench.ScenarioBroadcast, 100, 20
	o.PublishOrdered = true
	res := run(t, o)
	for _, rr := range heraldAndFloor(t, res) {
		if rr.Ramp["ws"].OK != 50 || rr.Ramp["sse"].OK != 50 {
			t.Fatalf("%s ramp: ws %+v sse %+v errors %v", rr.Server, rr.Ramp["ws"], rr.Ramp["sse"], rr.Errors)
		}
		if rr.Published.OK != 20 || rr.Published.Failed != 0 {
			t.Fatalf("%s published %+v", rr.Server, rr.Published)
		}
		d := rr.Total
		if d.Expected != 100*20 || d.Delivered != d.Expected || d.Lost != 0 || d.Duplicates != 0 || d.OutOfOrder != 0 {
			t.Fatalf("%s delivery %+v errors %v", rr.Server, d, rr.Errors)
		}
		if rr.Latency.Count != 2000 || rr.Latency.P99 <= 0 || len(rr.Spectrum) == 0 || rr.Histogram == "" {
			t.Fatalf("%s latency %+v", rr.Server, rr.Latency)
		}
		if len(rr.Errors) != 0 {
			t.Fatalf("%s errors %v", rr.Server, rr.Errors)
		}
	}
	if res.Ratios["latency_p50"] <= 0 {
		t.Fatalf("ratios %v", res.Ratios)
	}
}

// TestSmokePerUserAndResume publishes to random users and broadcast while
// connections are dropped and resumed with their cursors: every message
// must arrive exactly once.
func TestSmokePerUserAndResume(t *testing.T) {
	o := smokeOptions(startHerald(t))
	o.WS, o.SSE = 20, 20
	o.Scenario, o.BroadcastRate, o.UserRate = bench.ScenarioResume, 20, 100
	o.Duration, o.DropRate, o.ReconnectDelay = 2*time.Second, 40, 50*time.Millisecond
	rr := run(t, o).Herald
	if rr.Drops < 20 || rr.Reconnects < 10 {
		t.Fatalf("too few drops/reconnects: %d/%d", rr.Drops, rr.Reconnects)
	}
	if rr.Broadcast.Expected == 0 || rr.User.Expected == 0 {
		t.Fatalf("nothing expected: %+v %+v", rr.Broadcast, rr.User)
	}
	if d := rr.Total; d.Lost != 0 || d.Duplicates != 0 || d.Delivered != d.Expected {
		t.Fatalf("resume delivery %+v (broadcast %+v user %+v), errors %v", d, rr.Broadcast, rr.User, rr.Errors)
	}
}

// TestSmokeConcurrentPublishCoalescingFloor publishes with many requests
// in flight (the default mode) against Herald and the floor with write
// coalescing: 50 WS + 50 SSE, 40 broadcast messages, nothing lost or
// duplicated, and the publish call's latency is reported beside delivery.
func TestSmokeConcurrentPublishCoalescingFloor(t *testing.T) {
	o := smokeOptions(startHerald(t))
	o.FloorTargets = []string{startFloor(t, floor.Options{Coalesce: 8})}
	o.Scenario, o.BroadcastRate, o.Messages = bench.ScenarioBroadcast, 400, 40
	o.PublishConcurrency = 16
	res := run(t, o)
	for _, rr := range heraldAndFloor(t, res) {
		p := rr.Published
		if p.OK != 40 || p.Failed != 0 || p.Concurrency != 16 {
			t.Fatalf("%s published %+v errors %v", rr.Server, p, rr.Errors)
		}
		if p.Latency.Count != 40 || p.Latency.P50 <= 0 || p.Latency.P99 < p.Latency.P50 {
			t.Fatalf("%s publish latency %+v", rr.Server, p.Latency)
		}
		d := rr.Total
		if d.Expected != 100*40 || d.Delivered != d.Expected || d.Lost != 0 || d.Duplicates != 0 {
			t.Fatalf("%s delivery %+v errors %v", rr.Server, d, rr.Errors)
		}
		if rr.Latency.Count != 4000 {
			t.Fatalf("%s delivery latency %+v", rr.Server, rr.Latency)
		}
	}
}
