// Package report renders herald-bench results as one self-contained HTML
// page: summary tables with Herald/floor ratios, and inline SVG charts
// (latency percentiles over time, latency distribution, connections, RSS
// and CPU over time). It uses no external JavaScript or CSS, and the page is
// well-formed XML so it can be checked mechanically.
package report

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/heraldrt/herald/bench"
)

const css = `body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#111827;background:#fafafa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:2px solid #e5e7eb;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}.meta{color:#4b5563;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:6px 0 12px;background:#fff}
th,td{border:1px solid #e5e7eb;padding:4px 10px;text-align:right}th{background:#f3f4f6}td.l,th.l{text-align:left}
.ok{color:#047857;font-weight:600}.bad{color:#b91c1c;font-weight:600}.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{border:1px solid #e5e7eb;background:#fff}
.ct{font-size:14px;font-weight:600;fill:#111827}.lg{font-size:12px;fill:#374151}.xt{font-size:11px;fill:#4b5563;text-anchor:middle}
.yt{font-size:11px;fill:#4b5563;text-anchor:end}.xl,.yl{font-size:12px;fill:#374151;text-anchor:middle}.band{font-size:10px}
.grid{stroke:#e5e7eb;stroke-width:1}.frame{fill:none;stroke:#9ca3af;stroke-width:1}.none{font-size:14px;fill:#9ca3af;text-anchor:middle}`

// Write renders rs as one HTML page.
func Write(w io.Writer, rs []*bench.Result) error {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>")
	b.WriteString(`<meta name="viewport" content="width=device-width, initial-scale=1"/>`)
	b.WriteString("<title>Herald benchmark report</title><style>")
	b.WriteString(css)
	b.WriteString("</style></head><body>")
	b.WriteString("<h1>Herald benchmark report</h1>")
	if len(rs) > 0 {
		m := rs[0].Machine
		fmt.Fprintf(&b, `<p class="meta">%d CPUs, %.1f GiB, %s, kernel %s, open files %s. Generated %s.</p>`,
			m.CPUs, m.MemGiB, esc(m.GoVersion), esc(m.Kernel), esc(m.NoFile), time.Now().UTC().Format(time.RFC3339))
	}
	if len(rs) > 1 {
		overview(&b, rs)
	}
	for i, r := range rs {
		section(&b, i, r)
	}
	b.WriteString("</body></html>\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func overview(b *strings.Builder, rs []*bench.Result) {
	b.WriteString("<h2>Overview</h2><table><tr><th class=\"l\">run</th><th class=\"l\">scenario</th><th>WS</th><th>SSE</th>" +
		"<th>WS connects/s</th><th>KiB/WS</th><th>KiB/SSE</th><th>msgs/s published</th><th>publish p50 ms</th><th>publish p99 ms</th>" +
		"<th>delivered</th><th>lost</th><th>dup</th>" +
		"<th>p50 ms</th><th>p99 ms</th><th>max ms</th><th>server CPU %</th><th>errors</th></tr>")
	for i, r := range rs {
		for _, rr := range []*bench.RunResult{r.Herald, r.Floor} {
			if rr == nil {
				continue
			}
			name := r.Options.Label + " (" + rr.Server + ")"
			fmt.Fprintf(b, `<tr><td class="l"><a href="#run%d">%s</a></td><td class="l">%s</td><td>%d</td><td>%d</td>`, i, esc(name), esc(rr.Scenario), r.Options.WS, r.Options.SSE)
			ws := "–"
			if rp := rr.Ramp["ws"]; rp != nil {
				ws = fmt.Sprintf("%.0f", rp.PerSec)
			}
			fmt.Fprintf(b, "<td>%s</td><td>%s</td><td>%s</td>", ws, mem(rr.Memory.Measured && rr.Memory.AfterWSKiB > 0, rr.Memory.KiBPerWS), mem(rr.Memory.Measured && rr.Memory.AfterSSEKiB > 0, rr.Memory.KiBPerSSE))
			if rr.Published.OK+rr.Published.Failed > 0 {
				fmt.Fprintf(b, "<td>%.1f</td><td>%.2f</td><td>%.2f</td>%s<td>%s</td><td>%s</td><td>%.2f</td><td>%.2f</td><td>%.2f</td>", rr.Published.PerSec,
					rr.Published.Latency.P50, rr.Published.Latency.P99, deliveredCell(rr), zeroCell(rr.Accounting, rr.Total.Lost), zeroCell(rr.Accounting, rr.Total.Duplicates),
					rr.Latency.P50, rr.Latency.P99, rr.Latency.Max)
			} else {
				b.WriteString("<td>–</td><td>–</td><td>–</td><td>–</td><td>–</td><td>–</td><td>–</td><td>–</td><td>–</td>")
			}
			fmt.Fprintf(b, "<td>%.1f</td><td>%d</td></tr>", rr.ServerCPU, errCount(rr))
		}
	}
	b.WriteString("</table>")
}

func mem(ok bool, v float64) string {
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%.2f", v)
}

func deliveredCell(rr *bench.RunResult) string {
	if !rr.Accounting {
		return "<td>n/a</td>"
	}
	cls := "ok"
	if rr.Total.Lost > 0 {
		cls = "bad"
	}
	return fmt.Sprintf(`<td class="%s">%.4f %%</td>`, cls, rr.Total.Ratio()*100)
}

func zeroCell(accounting bool, v uint64) string {
	if !accounting {
		return "n/a"
	}
	if v == 0 {
		return `<span class="ok">0</span>`
	}
	return fmt.Sprintf(`<span class="bad">%d</span>`, v)
}

func errCount(rr *bench.RunResult) int64 {
	var n int64
	for _, v := range rr.Errors {
		n += v
	}
	return n
}

// row is one line of the summary table: a metric, its Herald and floor
// values, and whether the ratio is meaningful.
type row struct {
	name   string
	h, f   float64
	hasF   bool
	format string
}

func section(b *strings.Builder, i int, r *bench.Result) {
	o := r.Options
	fmt.Fprintf(b, `<h2 id="run%d">%s</h2>`, i, esc(o.Label))
	if h := r.Herald; h != nil && h.LoadAvg[0] != "" {
		fmt.Fprintf(b, `<p class="meta">Machine load average (1, 5, 15 min) at start: %s; at end: %s.</p>`, esc(h.LoadAvg[0]), esc(h.LoadAvg[1]))
	}
	phase := "measured phase " + o.Duration.String()
	if o.Scenario == bench.ScenarioStorm {
		phase = fmt.Sprintf("SIG%s to the target, survivors %s, publishing %s before the signal and after everyone is back",
			strings.ToUpper(o.StormSignal), strings.Join(o.StormTargets, ", "), o.StormAfter)
	}
	fmt.Fprintf(b, `<p class="meta">scenario <b>%s</b>: %d WS + %d SSE connections, targets %s, broadcast %.4g msgs/s, per-user %.4g msgs/s, %s, started %s.</p>`,
		esc(o.Scenario), o.WS, o.SSE, esc(strings.Join(o.Targets, ", ")), o.BroadcastRate, o.UserRate, esc(phase), r.Started.Format(time.RFC3339))
	h, f := r.Herald, r.Floor
	if h == nil {
		b.WriteString("<p>No results.</p>")
		return
	}
	var rows []row
	add := func(name, format string, get func(*bench.RunResult) (float64, bool)) {
		hv, ok := get(h)
		if !ok {
			return
		}
		rw := row{name: name, h: hv, format: format}
		if f != nil {
			rw.f, rw.hasF = get(f)
		}
		rows = append(rows, rw)
	}
	for _, tr := range []string{"ws", "sse"} {
		add(strings.ToUpper(tr)+" connects/s", "%.0f", func(x *bench.RunResult) (float64, bool) {
			if rp := x.Ramp[tr]; rp != nil {
				return rp.PerSec, true
			}
			return 0, false
		})
		add(strings.ToUpper(tr)+" ramp: server CPU (% of a core)", "%.0f", func(x *bench.RunResult) (float64, bool) {
			if rp := x.Ramp[tr]; rp != nil {
				return rp.ServerCPU, x.Memory.Measured
			}
			return 0, false
		})
		add(strings.ToUpper(tr)+" ramp: tool CPU (% of a core)", "%.0f", func(x *bench.RunResult) (float64, bool) {
			if rp := x.Ramp[tr]; rp != nil {
				return rp.ToolCPU, true
			}
			return 0, false
		})
		add(strings.ToUpper(tr)+" connect p99 (ms)", "%.2f", func(x *bench.RunResult) (float64, bool) {
			if rp := x.Ramp[tr]; rp != nil {
				return rp.Connect.P99, true
			}
			return 0, false
		})
	}
	add("RSS per WS (KiB)", "%.2f", func(x *bench.RunResult) (float64, bool) {
		return x.Memory.KiBPerWS, x.Memory.Measured && x.Ramp["ws"] != nil && x.Storm == nil
	})
	add("RSS per SSE (KiB)", "%.2f", func(x *bench.RunResult) (float64, bool) {
		return x.Memory.KiBPerSSE, x.Memory.Measured && x.Ramp["sse"] != nil && x.Storm == nil
	})
	add("server CPU, measured phase (% of a core)", "%.1f", func(x *bench.RunResult) (float64, bool) { return x.ServerCPU, x.Memory.Measured })
	add("tool CPU, measured phase (% of a core)", "%.1f", func(x *bench.RunResult) (float64, bool) { return x.ToolCPU, true })
	pub := h.Published.OK+h.Published.Failed > 0
	if pub {
		add("requested msgs/s", "%.1f", func(x *bench.RunResult) (float64, bool) { return x.Published.Requested, true })
		add("published msgs/s (acknowledged)", "%.1f", func(x *bench.RunResult) (float64, bool) { return x.Published.PerSec, true })
		add("scheduled but unsent (publish API too slow)", "%.0f", func(x *bench.RunResult) (float64, bool) { return float64(x.Published.Unsent), true })
		add("publishes in flight (0: ordered)", "%.0f", func(x *bench.RunResult) (float64, bool) { return float64(x.Published.Concurrency), true })
		add("publish API p50 (ms)", "%.2f", func(x *bench.RunResult) (float64, bool) { return x.Published.Latency.P50, true })
		add("publish API p99 (ms)", "%.2f", func(x *bench.RunResult) (float64, bool) { return x.Published.Latency.P99, true })
		add("messages received", "%.0f", func(x *bench.RunResult) (float64, bool) { return float64(x.Messages), true })
		for _, q := range []struct {
			n string
			g func(bench.Percentiles) float64
		}{{"latency p50 (ms)", func(p bench.Percentiles) float64 { return p.P50 }},
			{"latency p90 (ms)", func(p bench.Percentiles) float64 { return p.P90 }},
			{"latency p99 (ms)", func(p bench.Percentiles) float64 { return p.P99 }},
			{"latency p99.9 (ms)", func(p bench.Percentiles) float64 { return p.P999 }},
			{"latency max (ms)", func(p bench.Percentiles) float64 { return p.Max }}} {
			add(q.n, "%.2f", func(x *bench.RunResult) (float64, bool) { return q.g(x.Latency), x.Latency.Count > 0 })
		}
	}
	b.WriteString(`<table><tr><th class="l">metric</th><th>Herald</th>`)
	if f != nil {
		b.WriteString(`<th>floor</th><th>Herald/floor</th>`)
	}
	b.WriteString("</tr>")
	for _, rw := range rows {
		fmt.Fprintf(b, `<tr><td class="l">%s</td><td>%s</td>`, esc(rw.name), fmt.Sprintf(rw.format, rw.h))
		if f != nil {
			if rw.hasF {
				ratio := "–"
				if rw.f != 0 {
					ratio = fmt.Sprintf("%.2f", rw.h/rw.f)
				}
				fmt.Fprintf(b, "<td>%s</td><td>%s</td>", fmt.Sprintf(rw.format, rw.f), ratio)
			} else {
				b.WriteString("<td>–</td><td>–</td>")
			}
		}
		b.WriteString("</tr>")
	}
	b.WriteString("</table>")
	if h.Storm != nil {
		stormTable(b, h.Storm)
	}
	if h.Redis != nil {
		redisTable(b, h.Redis)
	}
	if pub {
		deliveryTable(b, h, f)
	}
	errorsTable(b, h, f)
	charts(b, h, f)
}

// stormTable renders the storm scenario's figures: how fast the victim's
// clients were back on the survivors, refusals and the survivors' load.
func stormTable(b *strings.Builder, st *bench.StormResult) {
	secs := func(v float64) string {
		if v < 0 {
			return `<span class="bad">not reached</span>`
		}
		return fmt.Sprintf("%.2f", v)
	}
	fmt.Fprintf(b, `<h3>Reconnect storm: SIG%s to %s (pid %d)</h3><table><tr><th class="l">figure</th><th>value</th></tr>`,
		esc(strings.ToUpper(st.Signal)), esc(st.Victim), st.VictimPID)
	backCls := "ok"
	if !st.AllBack {
		backCls = "bad"
	}
	var refused int64
	for _, v := range st.Refusals {
		refused += v
	}
	rows := [][2]string{
		{"connections on the victim at the signal", fmt.Sprintf("%d", st.Connections)},
		{"back on a survivor", fmt.Sprintf(`<span class="%s">%d</span>`, backCls, st.Back)},
		{"50 % back (s after the signal)", secs(st.Back50S)},
		{"99 % back (s)", secs(st.Back99S)},
		{"100 % back (s)", secs(st.Back100S)},
		{"victim process exited (s)", secs(st.VictimExitS)},
		{"refusals (failed reconnects, survivor closes)", zeroCell(true, uint64(refused))},
		{"reconnect p50 / p99, WS (ms)", fmt.Sprintf("%.2f / %.2f", st.ReconnectWS.P50, st.ReconnectWS.P99)},
		{"reconnect p50 / p99, SSE (ms)", fmt.Sprintf("%.2f / %.2f", st.ReconnectSSE.P50, st.ReconnectSSE.P99)},
	}
	if st.BaseRSSKiB > 0 {
		rows = append(rows,
			[2]string{"survivors' RSS at the signal → peak (MiB)", fmt.Sprintf("%.1f → %.1f", float64(st.BaseRSSKiB)/1024, float64(st.PeakRSSKiB)/1024)},
			[2]string{"survivors' CPU, peak second / average while moving (% of a core)", fmt.Sprintf("%.0f / %.0f", st.PeakCPU, st.MoveCPU)})
	}
	for _, s := range st.Survivors {
		rows = append(rows, [2]string{"moved to " + esc(s), fmt.Sprintf("%d", st.PerSurvivor[s])})
	}
	for _, k := range sortedKeys(st.Refusals) {
		rows = append(rows, [2]string{"refused: " + esc(k), fmt.Sprintf(`<span class="bad">%d</span>`, st.Refusals[k])})
	}
	for _, k := range sortedKeys(st.VictimCloses) {
		rows = append(rows, [2]string{"victim closed: " + esc(k), fmt.Sprintf("%d", st.VictimCloses[k])})
	}
	for _, r := range rows {
		fmt.Fprintf(b, `<tr><td class="l">%s</td><td>%s</td></tr>`, r[0], r[1])
	}
	b.WriteString("</table>")
}

// redisTable renders the Redis commands per connect (--redis).
func redisTable(b *strings.Builder, rc *bench.RedisCommands) {
	b.WriteString(`<h3>Redis commands (INFO commandstats, all servers)</h3><table><tr><th class="l">phase</th><th>per connection</th><th class="l">commands</th></tr>`)
	calls := func(m map[string]int64) string {
		var parts []string
		for _, k := range sortedKeys(m) {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
		return esc(strings.Join(parts, ", "))
	}
	fmt.Fprintf(b, `<tr><td class="l">connect ramps (per connect)</td><td>%.2f</td><td class="l">%s</td></tr>`, rc.RampPerConnect, calls(rc.Ramp))
	if rc.Storm != nil {
		fmt.Fprintf(b, `<tr><td class="l">storm, signal to 100 %% back (per reconnect, publishing subtracted)</td><td>%.2f</td><td class="l">%s</td></tr>`,
			rc.StormPerReconnect, calls(rc.Storm))
	}
	b.WriteString("</table>")
}

func sortedKeys(m map[string]int64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func deliveryTable(b *strings.Builder, h, f *bench.RunResult) {
	b.WriteString(`<h3>Delivery (exact, per receiver and sequence number)</h3><table><tr><th class="l">server</th><th class="l">stream</th>` +
		`<th>expected</th><th>delivered</th><th>delivered %</th><th>lost</th><th>duplicates</th><th>out of order</th><th>unconfirmed</th><th>receivers</th><th>drained in</th></tr>`)
	for _, rr := range []*bench.RunResult{h, f} {
		if rr == nil {
			continue
		}
		if !rr.Accounting {
			fmt.Fprintf(b, `<tr><td class="l">%s</td><td class="l" colspan="10">not accounted (churned connections reconnect without a cursor)</td></tr>`, esc(rr.Server))
			continue
		}
		for _, s := range []struct {
			n string
			d bench.Delivery
		}{{"broadcast", rr.Broadcast}, {"per-user", rr.User}, {"total", rr.Total}} {
			if s.d.Expected == 0 && s.d.Delivered == 0 && s.n != "total" {
				continue
			}
			cls := "ok"
			if s.d.Lost > 0 {
				cls = "bad"
			}
			fmt.Fprintf(b, `<tr><td class="l">%s</td><td class="l">%s</td><td>%d</td><td>%d</td><td class="%s">%.4f</td><td>%s</td><td>%s</td><td>%s</td><td>%d</td><td>%d</td><td>%s</td></tr>`,
				esc(rr.Server), s.n, s.d.Expected, s.d.Delivered, cls, s.d.Ratio()*100, zeroCell(true, s.d.Lost), zeroCell(true, s.d.Duplicates),
				zeroCell(true, s.d.OutOfOrder), s.d.Unconfirmed, rr.Receivers, esc(rr.DrainedIn))
		}
	}
	b.WriteString("</table>")
}

func errorsTable(b *strings.Builder, h, f *bench.RunResult) {
	type e struct {
		server, cause string
		n             int64
	}
	var es []e
	for _, rr := range []*bench.RunResult{h, f} {
		if rr == nil {
			continue
		}
		for k, v := range rr.Errors {
			es = append(es, e{rr.Server, k, v})
		}
		if rr.Drops > 0 || rr.Reconnects > 0 {
			es = append(es, e{rr.Server, fmt.Sprintf("(not an error) %d deliberate drops, %d reconnects", rr.Drops, rr.Reconnects), 0})
		}
	}
	b.WriteString("<h3>Errors by cause</h3>")
	if len(es) == 0 {
		b.WriteString(`<p class="ok">No errors.</p>`)
		return
	}
	sort.Slice(es, func(i, j int) bool {
		return es[i].server < es[j].server || es[i].server == es[j].server && es[i].n > es[j].n
	})
	b.WriteString(`<table><tr><th class="l">server</th><th class="l">cause</th><th>count</th></tr>`)
	for _, x := range es {
		fmt.Fprintf(b, `<tr><td class="l">%s</td><td class="l">%s</td><td>%d</td></tr>`, esc(x.server), esc(x.cause), x.n)
	}
	b.WriteString("</table>")
}

// phaseBands turns the samples' phases into shaded ranges.
func phaseBands(ss []bench.Sample) []band {
	var out []band
	prev := 0.0
	for i, s := range ss {
		if i == 0 || s.Phase != ss[i-1].Phase {
			if len(out) > 0 {
				out[len(out)-1].to = prev
			}
			start := prev
			if i == 0 {
				start = 0
			}
			out = append(out, band{from: start, to: s.T, label: s.Phase})
		}
		prev = s.T
		out[len(out)-1].to = s.T
	}
	return out
}

// timeRange fixes a time chart's x axis to the whole run.
func timeRange(c chart, runs []*bench.RunResult) chart {
	end := 0.0
	for _, rr := range runs {
		if n := len(rr.Samples); n > 0 {
			end = math.Max(end, rr.Samples[n-1].T)
		}
	}
	if end > 0 {
		c.fixedX, c.xMin, c.xMax = true, 0, end
	}
	return c
}

func nanIfZero(v float64) float64 {
	if v == 0 {
		return math.NaN()
	}
	return v
}

func charts(b *strings.Builder, h, f *bench.RunResult) {
	runs := []*bench.RunResult{h}
	if f != nil {
		runs = append(runs, f)
	}
	b.WriteString(`<div class="charts">`)
	// Latency percentiles over time, one chart per server.
	if h.Latency.Count > 0 {
		for _, rr := range runs {
			c := chart{title: "Latency per second — " + rr.Server, xLabel: "time since start (s)", yLabel: "publish→receive (ms, log)", logY: true, bands: phaseBands(rr.Samples)}
			for i, q := range []struct {
				n string
				g func(bench.Sample) float64
			}{{"p50", func(s bench.Sample) float64 { return s.P50 }}, {"p90", func(s bench.Sample) float64 { return s.P90 }},
				{"p99", func(s bench.Sample) float64 { return s.P99 }}, {"max", func(s bench.Sample) float64 { return s.Max }}} {
				s := series{name: q.n, color: palette[i]}
				for _, sm := range rr.Samples {
					s.pts = append(s.pts, point{sm.T, nanIfZero(q.g(sm))})
				}
				c.series = append(c.series, s)
			}
			b.WriteString(timeRange(c, []*bench.RunResult{rr}).render())
		}
		// Distribution: percentile spectrum, both servers on one chart.
		c := chart{title: "Latency distribution (percentile spectrum)", xLabel: "percentile", yLabel: "publish→receive (ms, log)", logY: true,
			fixedX: true, xMin: 0, xMax: 5.6, xTicks: []tick{{0, "0%"}, {1, "90%"}, {2, "99%"}, {3, "99.9%"}, {4, "99.99%"}, {5, "99.999%"}, {5.6, "max"}}}
		for i, rr := range runs {
			s := series{name: rr.Server, color: palette[i], dash: i == 1}
			for _, p := range rr.Spectrum {
				x := 5.6
				if p.Percentile < 100 {
					x = math.Min(5, -math.Log10(1-p.Percentile/100))
				}
				s.pts = append(s.pts, point{x, p.Ms})
			}
			c.series = append(c.series, s)
		}
		b.WriteString(c.render())
		// Messages per second.
		c = chart{title: "Messages received per second", xLabel: "time since start (s)", yLabel: "msgs/s", bands: phaseBands(h.Samples)}
		for i, rr := range runs {
			s := series{name: rr.Server, color: palette[i], dash: i == 1}
			for _, sm := range rr.Samples {
				s.pts = append(s.pts, point{sm.T, sm.MsgsPerSec})
			}
			c.series = append(c.series, s)
		}
		b.WriteString(timeRange(c, runs).render())
	}
	// Connections over time.
	c := chart{title: "Open connections", xLabel: "time since start (s)", yLabel: "connections", bands: phaseBands(h.Samples)}
	for i, rr := range runs {
		ws := series{name: rr.Server + " WS", color: palette[2*i], dash: i == 1}
		sse := series{name: rr.Server + " SSE", color: palette[2*i+1], dash: i == 1}
		for _, sm := range rr.Samples {
			ws.pts = append(ws.pts, point{sm.T, float64(sm.WS)})
			sse.pts = append(sse.pts, point{sm.T, float64(sm.SSE)})
		}
		c.series = append(c.series, ws)
		if slices.ContainsFunc(rr.Samples, func(s bench.Sample) bool { return s.SSE > 0 }) {
			c.series = append(c.series, sse)
		}
	}
	b.WriteString(timeRange(c, runs).render())
	// RSS and CPU over time.
	if h.Memory.Measured {
		c = chart{title: "Server RSS", xLabel: "time since start (s)", yLabel: "MiB", bands: phaseBands(h.Samples)}
		for i, rr := range runs {
			s := series{name: rr.Server, color: palette[i], dash: i == 1}
			for _, sm := range rr.Samples {
				s.pts = append(s.pts, point{sm.T, sm.RSSMiB})
			}
			c.series = append(c.series, s)
		}
		b.WriteString(timeRange(c, runs).render())
	}
	c = chart{title: "CPU (% of one core)", xLabel: "time since start (s)", yLabel: "%", bands: phaseBands(h.Samples)}
	for i, rr := range runs {
		srv := series{name: rr.Server + " server", color: palette[2*i], dash: i == 1}
		tool := series{name: rr.Server + " run: tool", color: palette[2*i+1], dash: i == 1}
		for _, sm := range rr.Samples {
			srv.pts = append(srv.pts, point{sm.T, sm.ServerCPU})
			tool.pts = append(tool.pts, point{sm.T, sm.ToolCPU})
		}
		if rr.Memory.Measured {
			c.series = append(c.series, srv)
		}
		c.series = append(c.series, tool)
	}
	b.WriteString(timeRange(c, runs).render())
	b.WriteString("</div>")
}
