package bench

import (
	"strings"
	"testing"
	"time"
)

func TestBackTimes(t *testing.T) {
	t0 := time.Unix(100, 0)
	at := func(ms int64) int64 { return t0.UnixNano() + ms*int64(time.Millisecond) }
	// 200 connections: 198 back by 1 s (one moved before the signal), one at 2 s, one at 5 s.
	var ts []int64
	ts = append(ts, at(-50))
	for i := range 197 {
		ts = append(ts, at(int64(10+i*5)))
	}
	ts = append(ts, at(2000), at(5000))
	p50, p99, p100 := backTimes(ts, 200, t0)
	if p50 != 0.5 || p99 != 0.99 || p100 != 5 {
		t.Fatalf("back times %v %v %v", p50, p99, p100)
	}
	// Two never came back: 99 % (198) reached, 100 % not.
	p50, p99, p100 = backTimes(ts[:198], 200, t0)
	if p99 != 0.99 || p100 != -1 || p50 < 0 {
		t.Fatalf("back times without the last two %v %v %v", p50, p99, p100)
	}
	if _, _, p100 := backTimes(nil, 0, t0); p100 != 0 {
		t.Fatalf("nothing to move: %v", p100)
	}
}

func TestStormOptions(t *testing.T) {
	ok := Options{Scenario: ScenarioStorm, Targets: []string{"127.0.0.1:1"}, StormTargets: []string{"127.0.0.1:2"},
		StormPID: 99, PIDs: []int{98}, WS: 10, Secret: "s", APIKey: "k"}.Defaults()
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid storm options: %v", err)
	}
	if ok.StormSignal != "term" || ok.BroadcastRate <= 0 || ok.UserRate <= 0 || ok.StormWait <= 0 {
		t.Fatalf("defaults %+v", ok)
	}
	for name, c := range map[string]struct {
		mod  func(*Options)
		want string
	}{
		"two victims":     {func(o *Options) { o.Targets = append(o.Targets, "127.0.0.1:3") }, "exactly one --target"},
		"no survivors":    {func(o *Options) { o.StormTargets = nil }, "--storm-target"},
		"victim survives": {func(o *Options) { o.StormTargets = o.Targets }, "is the victim"},
		"no pid":          {func(o *Options) { o.StormPID = 0 }, "--storm-pid"},
		"victim sampled":  {func(o *Options) { o.PIDs = []int{99} }, "survivors' pids"},
		"bad signal":      {func(o *Options) { o.StormSignal = "hup" }, "use term or kill"},
		"floor":           {func(o *Options) { o.FloorTargets = []string{"127.0.0.1:4"} }, "--compare-floor"},
	} {
		o := ok
		c.mod(&o)
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}
