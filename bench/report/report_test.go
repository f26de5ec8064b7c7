package report

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/bench"
)

func sampleRun(server string, scale float64) *bench.RunResult {
	rr := &bench.RunResult{Server: server, Scenario: "broadcast", Targets: []string{"127.0.0.1:1"},
		Ramp:      map[string]*bench.Ramp{"ws": {Attempted: 100, OK: 100, Seconds: 0.1, PerSec: 1000 * scale}},
		Memory:    bench.Memory{Measured: true, BaselineKiB: 1000, AfterWSKiB: 2000, KiBPerWS: 10 * scale},
		ServerCPU: 12.5 * scale, ToolCPU: 20, Measured: 10 * time.Second, Accounting: true,
		Published: bench.Published{OK: 200, PerSec: 20, Concurrency: 64,
			Latency: bench.Percentiles{Count: 200, P50: 1.25 * scale, P99: 37.5 * scale}}, Receivers: 100,
		Broadcast: bench.Delivery{Expected: 20000, Delivered: 20000},
		Total:     bench.Delivery{Expected: 20000, Delivered: 20000},
		Latency:   bench.Percentiles{Count: 20000, P50: 2 * scale, P90: 4 * scale, P99: 8 * scale, Max: 20 * scale},
		Errors:    map[string]int64{"connect: timeout <&>": 2},
	}
	for i := range 30 {
		phase := "connect-ws"
		if i > 3 {
			phase = "measure"
		}
		rr.Samples = append(rr.Samples, bench.Sample{T: float64(i), Phase: phase, WS: int64(min(100, i*30)),
			MsgsPerSec: 2000, P50: 2 * scale, P90: 4, P99: 8 + math.Sin(float64(i)), Max: 20, RSSMiB: 50, ServerCPU: 10, ToolCPU: 5})
	}
	for _, p := range []float64{0, 50, 90, 99, 99.9, 100} {
		rr.Spectrum = append(rr.Spectrum, bench.SpectrumPoint{Percentile: p, Ms: 1 + p/10*scale})
	}
	return rr
}

// TestReportIsWellFormed renders two results (one with a floor run) and
// checks the page parses as XML, has every chart, and escapes text.
func TestReportIsWellFormed(t *testing.T) {
	a := &bench.Result{Machine: bench.MachineInfo(), Options: bench.Options{Label: "broadcast <20/s>", Scenario: "broadcast", WS: 100, Targets: []string{"127.0.0.1:1"}},
		Herald: sampleRun("herald", 1), Floor: sampleRun("floor", 0.5)}
	b := &bench.Result{Options: bench.Options{Label: "idle", Scenario: "idle", WS: 100}, Herald: sampleRun("herald", 1)}
	b.Herald.Published = bench.Published{}
	b.Herald.Latency = bench.Percentiles{}
	var buf bytes.Buffer
	if err := Write(&buf, []*bench.Result{a, b}); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	// The publish call's latency is shown next to delivery latency, in the
	// overview and in the run's table.
	for _, want := range []string{"<th>publish p50 ms</th><th>publish p99 ms</th>", "<td>1.25</td><td>37.50</td>",
		"publish API p50 (ms)", "publishes in flight (0: ordered)"} {
		if !strings.Contains(page, want) {
			t.Fatalf("report lacks %q", want)
		}
	}
	if !strings.HasPrefix(page, "<!DOCTYPE html>") || !strings.HasSuffix(strings.TrimSpace(page), "</html>") {
		t.Fatal("not an HTML document")
	}
	for _, bad := range []string{"<script", "http://", "https://", "<link"} {
		if strings.Contains(strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, ""), bad) {
			t.Fatalf("page is not self-contained: contains %q", bad)
		}
	}
	d := xml.NewDecoder(strings.NewReader(page))
	d.Strict = true
	svgs, paths := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("report is not well-formed: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "svg":
				svgs++
			case "path":
				paths++
			}
		}
	}
	// a: 2 latency-over-time + distribution + msgs/s + connections + RSS + CPU = 7; b: connections + RSS + CPU = 3.
	if svgs != 10 {
		t.Fatalf("%d svg charts, want 10", svgs)
	}
	if paths < 15 {
		t.Fatalf("only %d lines drawn", paths)
	}
	for _, want := range []string{"broadcast &lt;20/s&gt;", "connect: timeout &lt;&amp;&gt;", "Herald/floor", "Latency distribution", "Open connections", "Server RSS"} {
		if !strings.Contains(page, want) {
			t.Fatalf("page lacks %q", want)
		}
	}
}

func TestNiceStepAndFormat(t *testing.T) {
	for _, c := range []struct {
		span float64
		n    int
		want float64
	}{{10, 5, 2}, {100, 5, 20}, {7, 6, 1.25 * 1}, {0, 5, 1}, {12000, 5, 2500}} {
		got := niceStep(c.span, c.n)
		if c.span == 7 {
			if got != 2.5 && got != 2 && got != 1 {
				t.Errorf("niceStep(7,6) = %v", got)
			}
			continue
		}
		if got != c.want {
			t.Errorf("niceStep(%v,%d) = %v, want %v", c.span, c.n, got, c.want)
		}
	}
	for v, want := range map[float64]string{0: "0", 1500: "1500", 25000: "25k", 2e6: "2M", 0.5: "0.5", 12.345: "12.35"} {
		if got := fmtValue(v); got != want {
			t.Errorf("fmtValue(%v) = %q, want %q", v, got, want)
		}
	}
}

// TestReportStormTable renders a storm run: the figures the scenario
// exists for are on the page, a missed 100 % is flagged, causes escaped.
func TestReportStormTable(t *testing.T) {
	rr := sampleRun("herald", 1)
	rr.Scenario = "storm"
	rr.Storm = &bench.StormResult{Signal: "kill", Victim: "127.0.0.1:1", VictimPID: 42, Survivors: []string{"127.0.0.1:2", "127.0.0.1:3"},
		Connections: 90, Back: 89, Back50S: 0.16, Back99S: 0.32, Back100S: -1, VictimExitS: 0.1,
		PerSurvivor: map[string]int{"127.0.0.1:2": 45, "127.0.0.1:3": 44},
		Refusals:    map[string]int64{"reconnect: HTTP 503 <x>": 3}, VictimCloses: map[string]int64{"closed by server (EOF)": 90},
		BaseRSSKiB: 2048, PeakRSSKiB: 4096, PeakCPU: 80, MoveCPU: 50}
	rr.Redis = &bench.RedisCommands{Ramp: map[string]int64{"evalsha": 180, "get": 90}, RampPerConnect: 5.5,
		Storm: map[string]int64{"evalsha": 200}, StormPerReconnect: 6.25}
	r := &bench.Result{Options: bench.Options{Label: "storm", Scenario: "storm", WS: 60, SSE: 30, StormSignal: "kill",
		StormTargets: []string{"127.0.0.1:2", "127.0.0.1:3"}, StormAfter: 5 * time.Second}, Herald: rr}
	var buf bytes.Buffer
	if err := Write(&buf, []*bench.Result{r}); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{"Reconnect storm: SIGKILL to 127.0.0.1:1 (pid 42)", "<td>0.32</td>", `<span class="bad">not reached</span>`,
		`<span class="bad">89</span>`, "refused: reconnect: HTTP 503 &lt;x&gt;", "moved to 127.0.0.1:3</td><td>44", "2.0 → 4.0", "80 / 50",
		"<td>5.50</td><td class=\"l\">evalsha 180, get 90</td>", "<td>6.25</td>",
		"SIGKILL to the target, survivors 127.0.0.1:2, 127.0.0.1:3, publishing 5s before the signal"} {
		if !strings.Contains(page, want) {
			t.Fatalf("storm report lacks %q", want)
		}
	}
	if strings.Contains(page, "RSS per WS") {
		t.Fatal("storm report shows RSS per connection of the survivors, which hold none before the storm")
	}
	d := xml.NewDecoder(strings.NewReader(page))
	d.Strict = true
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("report is not well-formed: %v", err)
		}
	}
}
