// Command herald-bench load-tests Herald (and the floor server): it opens
// WebSocket and SSE connections from loopback source addresses, publishes
// through the HTTP API, and reports connects/s, memory and CPU per
// connection, publish→receive latency and exact delivery accounting as JSON
// and a self-contained HTML report.
//
//	herald-bench --scenario broadcast --target 127.0.0.1:18000 --pid $PID --ws 10000 --broadcast-rate 20 \
//	    [--compare-floor 127.0.0.1:18100 --floor-pid $FPID] --out r.json --html r.html
//	herald-bench --scenario storm --target 127.0.0.1:18001 --storm-pid $VICTIM --storm-target 127.0.0.1:18002 \
//	    --storm-target 127.0.0.1:18003 --pid $S2 --pid $S3 --ws 12000 --sse 6000 --storm-signal term|kill
//	herald-bench report --html index.html r1.json r2.json ...   combine result files into one report
//	herald-bench serve-herald --config configs/dev.yaml --pprof 127.0.0.1:6060   Herald in-process with pprof
//
// Runs larger than --max-per-worker connections re-execute this binary
// with the hidden --worker flag; workers serve JSON-RPC on stdin/stdout.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/heraldrt/herald/bench"
	"github.com/heraldrt/herald/bench/report"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "herald-bench:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "--worker" {
		return bench.ServeWorker(os.Stdin, os.Stdout)
	}
	if len(args) > 0 {
		switch args[0] {
		case "report":
			return reportCmd(args[1:], stderr)
		case "serve-herald":
			return serveHerald(args[1:], stderr)
		}
	}
	var o bench.Options
	var out, html string
	var quiet bool
	var cpuProfile string
	fs := pflag.NewFlagSet("herald-bench", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Scenario, "scenario", "idle", "idle, broadcast, per-user, mixed, churn, resume or storm")
	fs.StringVar(&o.Label, "label", "", "name of the run in reports (default: the scenario)")
	fs.StringSliceVar(&o.Targets, "target", []string{"127.0.0.1:8000"}, "Herald node host:port (repeatable; connections are spread over them)")
	fs.IntSliceVar(&o.PIDs, "pid", nil, "local server pid whose RSS/CPU to sample (repeatable)")
	fs.StringSliceVar(&o.FloorTargets, "compare-floor", nil, "floor server host:port: repeat the run against it and report Herald/floor ratios")
	fs.IntSliceVar(&o.FloorPIDs, "floor-pid", nil, "floor server pid (repeatable)")
	fs.IntVar(&o.WS, "ws", 0, "WebSocket connections")
	fs.IntVar(&o.SSE, "sse", 0, "SSE connections")
	fs.Float64Var(&o.Rate, "rate", 0, "connects per second during the ramp (0: as fast as possible)")
	fs.IntVar(&o.Concurrency, "concurrency", 1024, "connects in flight per process")
	fs.StringVar(&o.Secret, "secret", "dev-secret-change-me-0123456789abcdef", "HS256 secret (auth.jwt.hmac_secret)")
	fs.StringVar(&o.APIKey, "api-key", "dev-api-key-change-me", "publish API key")
	fs.DurationVar(&o.Duration, "duration", 20*time.Second, "length of the measured phase")
	fs.Float64Var(&o.BroadcastRate, "broadcast-rate", 0, "broadcast messages per second")
	fs.Float64Var(&o.UserRate, "user-rate", 0, "per-user messages per second (random users)")
	fs.IntVar(&o.PublishConcurrency, "publish-concurrency", 64, "publish requests in flight, taken from one queue for all streams like a busy backend (messages of a stream may arrive out of order)")
	fs.BoolVar(&o.PublishOrdered, "publish-ordered", false, "publish each stream's messages one at a time, in order (instead of --publish-concurrency)")
	fs.IntVar(&o.Messages, "messages", 0, "stop publishing after this many messages (0: run for --duration)")
	fs.IntVar(&o.PayloadPad, "pad", 0, "extra payload bytes")
	fs.DurationVar(&o.Settle, "settle", 3*time.Second, "pause after each ramp before reading memory")
	fs.DurationVar(&o.Drain, "drain", 10*time.Second, "longest wait for messages after publishing stops")
	fs.Float64Var(&o.DropRate, "drop-rate", 0, "connections dropped per second in resume/churn (default: each about once per 20 s)")
	fs.DurationVar(&o.ReconnectDelay, "reconnect-delay", 200*time.Millisecond, "upper bound of the random pause before a reconnect")
	fs.StringSliceVar(&o.StormTargets, "storm-target", nil, "storm: surviving node host:port (repeatable); the victim's clients reconnect to them round-robin and publishing goes through them")
	fs.IntVar(&o.StormPID, "storm-pid", 0, "storm: the victim's pid (the --target node), signalled by the tool")
	fs.StringVar(&o.StormSignal, "storm-signal", "term", "storm: term (SIGTERM, Herald drains over server.reconnect_window) or kill (SIGKILL)")
	fs.DurationVar(&o.StormAfter, "storm-after", 5*time.Second, "storm: publishing before the signal, and again after everyone is back")
	fs.DurationVar(&o.StormWait, "storm-wait", 60*time.Second, "storm: longest wait for every connection to be back on a survivor")
	fs.StringSliceVar(&o.RedisAddrs, "redis", nil, "Redis server host:port the nodes use (repeatable): report the Redis commands per connect from INFO commandstats")
	fs.StringVar(&o.SrcBase, "src", "127.0.0.2", "first client source address (later ones count up); empty: kernel's choice")
	fs.IntVar(&o.PerIP, "per-ip", bench.DefaultPerIP, "most connections per source address (more make connect(2) search longer for a free port)")
	fs.IntVar(&o.MaxPerWorker, "max-per-worker", 15000, "most connections per process; more start worker processes")
	fs.IntVar(&o.Workers, "workers", 0, "force this many worker processes")
	fs.DurationVar(&o.Timeout, "timeout", 15*time.Second, "connect timeout, up to the first message")
	fs.StringVar(&out, "out", "", "write JSON results to this file")
	fs.StringVar(&html, "html", "", "write the HTML report to this file")
	fs.BoolVar(&quiet, "quiet", false, "no progress line")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write this process's CPU profile (the tool's own cost) to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	if !quiet {
		o.Progress = stderr
	}
	o.Log = stderr
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, o)
	if res != nil && res.Herald != nil {
		if out != "" {
			if werr := res.WriteJSON(out); werr != nil {
				return werr
			}
		}
		if html != "" {
			if werr := writeHTML(html, []*bench.Result{res}); werr != nil {
				return werr
			}
		}
		printSummary(stdout, res)
	}
	return err
}

func writeHTML(path string, rs []*bench.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("html report: %w", err)
	}
	if err := report.Write(f, rs); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("html report: %w", err)
	}
	return nil
}

func reportCmd(args []string, stderr io.Writer) error {
	fs := pflag.NewFlagSet("herald-bench report", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	html := fs.String("html", "report.html", "HTML file to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("report: give result JSON files")
	}
	var rs []*bench.Result
	for _, p := range fs.Args() {
		r, err := bench.ReadResult(p)
		if err != nil {
			return err
		}
		rs = append(rs, r)
	}
	return writeHTML(*html, rs)
}

func printSummary(w io.Writer, res *bench.Result) {
	for _, r := range []*bench.RunResult{res.Herald, res.Floor} {
		if r == nil {
			continue
		}
		fmt.Fprintf(w, "== %s %s (%s)\n", r.Server, res.Options.Label, r.Scenario)
		for _, tr := range []string{"ws", "sse"} {
			if rp := r.Ramp[tr]; rp != nil {
				fmt.Fprintf(w, "  ramp %-3s  %d/%d ok in %.2fs = %.0f connects/s (connect p50 %.1fms p99 %.1fms; cpu server %.0f%% tool %.0f%%)\n",
					tr, rp.OK, rp.Attempted, rp.Seconds, rp.PerSec, rp.Connect.P50, rp.Connect.P99, rp.ServerCPU, rp.ToolCPU)
			}
		}
		if r.Memory.Measured && r.Storm == nil { // a storm's pids are the survivors: see its own lines
			fmt.Fprintf(w, "  memory    %.2f KiB/WS, %.2f KiB/SSE (RSS %.1f → %.1f MiB)\n", r.Memory.KiBPerWS, r.Memory.KiBPerSSE,
				float64(r.Memory.BaselineKiB)/1024, float64(max(r.Memory.AfterSSEKiB, r.Memory.AfterWSKiB))/1024)
		}
		fmt.Fprintf(w, "  loadavg   %s at start, %s at end\n", r.LoadAvg[0], r.LoadAvg[1])
		fmt.Fprintf(w, "  cpu       server %.1f%%, tool %.1f%% of one core over %s\n", r.ServerCPU, r.ToolCPU, r.Measured)
		if r.Published.OK+r.Published.Failed > 0 {
			mode := "ordered"
			if c := r.Published.Concurrency; c > 0 {
				mode = fmt.Sprintf("%d in flight", c)
			}
			fmt.Fprintf(w, "  published %d ok, %d failed, %d unsent (%.1f/s of %.1f/s requested, %s; API p50 %.1fms p99 %.1fms)\n", r.Published.OK, r.Published.Failed,
				r.Published.Unsent, r.Published.PerSec, r.Published.Requested, mode, r.Published.Latency.P50, r.Published.Latency.P99)
			if r.Accounting {
				t := r.Total
				fmt.Fprintf(w, "  delivery  %d/%d (%.4f%%) lost %d dup %d out-of-order %d unconfirmed %d, %d receivers\n",
					t.Delivered, t.Expected, t.Ratio()*100, t.Lost, t.Duplicates, t.OutOfOrder, t.Unconfirmed, r.Receivers)
			}
			l := r.Latency
			fmt.Fprintf(w, "  latency   p50 %.2fms p90 %.2fms p99 %.2fms p99.9 %.2fms max %.2fms (%d msgs)\n", l.P50, l.P90, l.P99, l.P999, l.Max, l.Count)
		}
		if rc := r.Redis; rc != nil {
			fmt.Fprintf(w, "  redis     %.2f commands per connect during the ramps %s\n", rc.RampPerConnect, fmtCalls(rc.Ramp))
			if rc.Storm != nil {
				fmt.Fprintf(w, "  redis     %.2f commands per reconnect during the storm, publishing subtracted %s\n", rc.StormPerReconnect, fmtCalls(rc.Storm))
			}
		}
		if st := r.Storm; st != nil {
			printStorm(w, st)
		}
		if r.Reconnects > 0 || r.Drops > 0 {
			fmt.Fprintf(w, "  reconnect %d drops, %d reconnects\n", r.Drops, r.Reconnects)
		}
		for k, v := range r.Errors {
			fmt.Fprintf(w, "  error     %6d × %s\n", v, k)
		}
	}
	for k, v := range res.Ratios {
		fmt.Fprintf(w, "  herald/floor %-20s %.2f\n", k, v)
	}
}

func printStorm(w io.Writer, st *bench.StormResult) {
	secs := func(v float64) string {
		if v < 0 {
			return "not reached"
		}
		return fmt.Sprintf("%.2fs", v)
	}
	fmt.Fprintf(w, "  storm     SIG%s to %s (pid %d): %d/%d back on %d survivors; 50%% %s, 99%% %s, 100%% %s after the signal (victim exited at %s)\n",
		strings.ToUpper(st.Signal), st.Victim, st.VictimPID, st.Back, st.Connections, len(st.Survivors),
		secs(st.Back50S), secs(st.Back99S), secs(st.Back100S), secs(st.VictimExitS))
	for _, s := range st.Survivors {
		fmt.Fprintf(w, "  storm     %d moved to %s\n", st.PerSurvivor[s], s)
	}
	fmt.Fprintf(w, "  storm     reconnect p50/p99: WS %.1f/%.1fms, SSE %.1f/%.1fms\n",
		st.ReconnectWS.P50, st.ReconnectWS.P99, st.ReconnectSSE.P50, st.ReconnectSSE.P99)
	if st.BaseRSSKiB > 0 {
		fmt.Fprintf(w, "  storm     survivors: RSS %.1f → peak %.1f MiB, CPU peak %.0f%%, %.0f%% average while moving (of one core)\n",
			float64(st.BaseRSSKiB)/1024, float64(st.PeakRSSKiB)/1024, st.PeakCPU, st.MoveCPU)
	}
	var refused int64
	for k, v := range st.Refusals {
		refused += v
		fmt.Fprintf(w, "  storm     refused %6d × %s\n", v, k)
	}
	fmt.Fprintf(w, "  storm     refusals %d\n", refused)
	for k, v := range st.VictimCloses {
		fmt.Fprintf(w, "  storm     victim closed %6d × %s\n", v, k)
	}
}

// fmtCalls formats commands by name, most called first: "(evalsha 300, get 100)".
func fmtCalls(m map[string]int64) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return m[ks[i]] > m[ks[j]] || m[ks[i]] == m[ks[j]] && ks[i] < ks[j] })
	parts := make([]string, len(ks))
	for i, k := range ks {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return "(" + strings.Join(parts, ", ") + ")"
}
