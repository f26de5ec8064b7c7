package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Run runs o.Scenario against o.Targets and, when o.FloorTargets is set,
// the same run against the floor server (not for resume, which needs
// cursors the floor does not have).
func Run(ctx context.Context, o Options) (*Result, error) {
	o = o.Defaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	res := &Result{Tool: "herald-bench", Started: time.Now().UTC(), Machine: MachineInfo(), Options: o}
	h, err := runOne(ctx, o, "herald", o.Targets, o.PIDs)
	res.Herald = h
	if err != nil {
		return res, fmt.Errorf("herald run: %w", err)
	}
	if len(o.FloorTargets) > 0 && o.Scenario != ScenarioResume && o.Scenario != ScenarioStorm {
		// Let the first run's sockets and the machine calm down.
		select {
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
			return res, ctx.Err()
		}
		f, err := runOne(ctx, o, "floor", o.FloorTargets, o.FloorPIDs)
		res.Floor = f
		if err != nil {
			return res, fmt.Errorf("floor run: %w", err)
		}
		res.Ratios = computeRatios(h, f)
	}
	return res, nil
}

// run is the state of one run against one server.
type run struct {
	o      Options
	server string
	pids   []int
	fleets []fleetClient
	pub    *publisher
	start  time.Time

	collectMu sync.Mutex // one collect at a time

	mu         sync.Mutex
	phase      string
	lat        *hdrhistogram.Histogram
	connLat    [2]*hdrhistogram.Histogram
	errs       map[string]int64
	errTotal   int64
	msgs       int64
	reconnects int64
	drops      int64
	workerCPU  []float64
	up         [2]int64
	samples    []Sample
	redis      *RedisCommands // nil without --redis
	lastT      time.Time
	lastCPU    float64 // servers
	lastTool   float64
}

func runOne(ctx context.Context, o Options, server string, targets []string, pids []int) (*RunResult, error) {
	total := o.WS + o.SSE
	nFleets, remote := 1, false
	if o.Workers > 0 {
		nFleets, remote = o.Workers, true
	} else if total > o.MaxPerWorker {
		nFleets, remote = (total+o.MaxPerWorker-1)/o.MaxPerWorker, true
	}
	srcs := sourceIPs(o.SrcBase, (total+o.PerIP-1)/o.PerIP)
	rr := &RunResult{Server: server, Targets: targets, Scenario: o.Scenario, Fleets: nFleets, Workers: remote,
		SrcIPs: srcs, Ramp: map[string]*Ramp{}, Errors: map[string]int64{}}
	rr.LoadAvg[0] = LoadAvg()
	defer func() { rr.LoadAvg[1] = LoadAvg() }()
	r := &run{o: o, server: server, pids: pids, lat: NewHistogram(), errs: map[string]int64{},
		workerCPU: make([]float64, nFleets), start: time.Now()}
	r.connLat[WS], r.connLat[SSE] = NewHistogram(), NewHistogram()
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	exe := o.WorkerExe
	if remote && exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return rr, fmt.Errorf("find own binary for workers: %w", err)
		}
	}
	storm := o.Scenario == ScenarioStorm
	resume := o.Scenario == ScenarioResume || storm
	churn := o.Scenario == ScenarioChurn
	for k := range nFleets {
		spec := FleetSpec{Index: k, Count: nFleets, WS: o.WS, SSE: o.SSE, Targets: targets, SrcIPs: srcs,
			Secret: o.Secret, UserPrefix: o.UserPrefix, Envelope: resume, Resume: resume,
			ReconnectOnLoss: resume || churn, ReconnectDelay: o.ReconnectDelay, HonorRetry: storm,
			Concurrency: o.Concurrency, Rate: o.Rate / float64(nFleets), Timeout: o.Timeout}
		if storm {
			spec.ReconnectTargets = o.StormTargets
		}
		var fc fleetClient
		if remote {
			w, err := startWorker(exe, spec, logw)
			if err != nil {
				r.closeFleets()
				return rr, err
			}
			fc = w
		} else {
			f, err := NewFleet(spec)
			if err != nil {
				return rr, err
			}
			fc = localFleet{f}
		}
		r.fleets = append(r.fleets, fc)
	}
	defer r.closeFleets()

	if len(pids) > 0 {
		rss, cpu, err := ReadProcs(pids)
		if err != nil {
			return rr, err
		}
		rr.Memory.Measured, rr.Memory.BaselineKiB = true, rss
		r.lastCPU = cpu
	}
	r.lastT, r.lastTool = time.Now(), SelfCPU()
	stopSampler := r.sampler()
	defer stopSampler()

	var calls0 map[string]int64
	if len(o.RedisAddrs) > 0 {
		var err error
		if calls0, err = redisCalls(o.RedisAddrs); err != nil {
			return rr, err
		}
		r.redis = &RedisCommands{}
		rr.Redis = r.redis
	}
	// Ramps: WebSockets, then SSE, each followed by a settle and a memory
	// reading.
	for _, tr := range []Transport{WS, SSE} {
		n := o.WS
		if tr == SSE {
			n = o.SSE
		}
		if n == 0 {
			continue
		}
		r.setPhase("connect-" + tr.String())
		ramp, err := r.connect(tr)
		if err != nil {
			return rr, err
		}
		rr.Ramp[tr.String()] = ramp
		r.setPhase("settle")
		if err := sleepCtx(ctx, o.Settle); err != nil {
			return rr, err
		}
		if len(pids) > 0 && !storm { // in a storm, pids are the survivors: no connections yet
			rss, _, err := ReadProcs(pids)
			if err != nil {
				return rr, err
			}
			if tr == WS {
				rr.Memory.AfterWSKiB = rss
				rr.Memory.KiBPerWS = round2(float64(rss-rr.Memory.BaselineKiB) / float64(max(1, ramp.OK)))
			} else {
				before := rr.Memory.AfterWSKiB
				if o.WS == 0 {
					before = rr.Memory.BaselineKiB
				}
				rr.Memory.AfterSSEKiB = rss
				rr.Memory.KiBPerSSE = round2(float64(rss-before) / float64(max(1, ramp.OK)))
			}
		}
	}

	if r.redis != nil {
		calls1, err := redisCalls(o.RedisAddrs)
		if err != nil {
			return rr, err
		}
		var total int64
		r.redis.Ramp, total = callsDelta(calls0, calls1)
		ok := 0
		for _, rp := range rr.Ramp {
			ok += rp.OK
		}
		if ok > 0 {
			r.redis.RampPerConnect = round2(float64(total) / float64(ok))
		}
	}
	// Measured phase.
	srvCPU0 := r.serverCPU()
	tool0 := r.toolCPU()
	m0 := time.Now()
	r.setPhase("measure")
	if o.Scenario == ScenarioIdle {
		if err := sleepCtx(ctx, o.Duration); err != nil {
			return rr, err
		}
	} else if storm {
		// Publish through the survivors throughout the storm.
		r.pub = newPublisher(o.StormTargets, o.APIKey, o.PayloadPad, total, 32, pubConcurrency(o), o.UserPrefix)
		pctx, pcancel := context.WithCancel(ctx)
		pubDone := make(chan struct{})
		go func() {
			defer close(pubDone)
			r.pub.run(pctx, o.BroadcastRate, o.UserRate, 0, o.Messages)
		}()
		st, err := r.storm(ctx)
		pcancel()
		<-pubDone
		rr.Storm = st
		if err != nil {
			return rr, err
		}
	} else {
		if resume || churn {
			for _, f := range r.fleets {
				if err := f.SetDropping(o.DropRate / float64(nFleets)); err != nil {
					return rr, err
				}
			}
		}
		users := 0
		if o.UserRate > 0 {
			users = total
		}
		r.pub = newPublisher(targets, o.APIKey, o.PayloadPad, users, 32, pubConcurrency(o), o.UserPrefix)
		r.pub.run(ctx, o.BroadcastRate, o.UserRate, o.Duration, o.Messages)
		for _, f := range r.fleets {
			if err := f.SetDropping(0); err != nil {
				return rr, err
			}
		}
	}
	rr.Measured = time.Since(m0).Round(time.Millisecond)
	rr.ServerCPU = round2((r.serverCPU() - srvCPU0) / rr.Measured.Seconds() * 100)
	rr.ToolCPU = round2((r.toolCPU() - tool0) / rr.Measured.Seconds() * 100)

	if r.pub != nil {
		r.setPhase("drain")
		exp := r.pub.expectations(o.Drain)
		exp.Account = !churn
		rr.Accounting = exp.Account
		results, err := eachFleet(r.fleets, func(f fleetClient) (FleetResult, error) { return f.Finish(exp) })
		if err != nil {
			return rr, err
		}
		var drained time.Duration
		for _, fr := range results {
			rr.Broadcast.Add(fr.Broadcast)
			rr.User.Add(fr.User)
			rr.Receivers += fr.Receivers
			drained = max(drained, fr.DrainedIn)
		}
		rr.DrainedIn = drained.Round(time.Millisecond).String()
		rr.Total = rr.Broadcast
		rr.Total.Add(rr.User)
		ok, fail := r.pub.ok.Load(), r.pub.fail.Load()
		rr.Published = Published{OK: ok, Failed: fail, Unsent: r.pub.unsent.Load(), Requested: o.BroadcastRate + o.UserRate,
			PerSec:    round2(float64(ok) / rr.Measured.Seconds()),
			Broadcast: exp.Broadcast.Max, Latency: Summarize(r.pub.lat.Drain()), Concurrency: r.pub.concurrency}
		for _, m := range exp.UserMax {
			rr.Published.User += m
		}
	}
	if err := r.collect(); err != nil {
		return rr, err
	}
	if len(pids) > 0 {
		if rss, _, err := ReadProcs(pids); err == nil {
			rr.Memory.EndKiB = rss
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rr.Latency = Summarize(r.lat)
	rr.Spectrum = Spectrum(r.lat)
	var err error
	if rr.Histogram, err = EncodeHistogram(r.lat); err != nil {
		return rr, err
	}
	rr.Messages, rr.Reconnects, rr.Drops = r.msgs, r.reconnects, r.drops
	maps.Copy(rr.Errors, r.errs)
	if rr.Storm != nil {
		splitStormErrors(rr.Storm, rr.Errors)
		rr.Storm.ReconnectWS, rr.Storm.ReconnectSSE = Summarize(r.connLat[WS]), Summarize(r.connLat[SSE])
	}
	rr.Samples = r.samples
	return rr, nil
}

// pubConcurrency is the publisher's concurrency: 0 for ordered mode.
func pubConcurrency(o Options) int {
	if o.PublishOrdered {
		return 0
	}
	return o.PublishConcurrency
}

func round2(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *run) setPhase(p string) {
	r.mu.Lock()
	r.phase = p
	r.mu.Unlock()
}

func (r *run) closeFleets() {
	var wg sync.WaitGroup
	for _, f := range r.fleets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.Close(); err != nil && r.o.Log != nil {
				fmt.Fprintln(r.o.Log, "close fleet:", err)
			}
		}()
	}
	wg.Wait()
	r.fleets = nil
}

// connect runs one transport's ramp on every fleet at once.
func (r *run) connect(tr Transport) (*Ramp, error) {
	srv0, tool0, t0 := r.serverCPU(), r.toolCPU(), time.Now()
	results, err := eachFleet(r.fleets, func(f fleetClient) (PhaseResult, error) { return f.Connect(tr) })
	if err != nil {
		return nil, err
	}
	ramp := &Ramp{}
	var first, last int64
	for _, p := range results {
		ramp.Attempted += p.Attempted
		ramp.OK += p.OK
		ramp.Failed += p.Failed
		if p.Attempted > 0 && (first == 0 || p.StartNS < first) {
			first = p.StartNS
		}
		last = max(last, p.EndNS)
	}
	ramp.Seconds = round2(float64(last-first) / 1e9)
	if last > first {
		ramp.PerSec = round2(float64(ramp.OK) / (float64(last-first) / 1e9))
	}
	if err := r.collect(); err != nil {
		return nil, err
	}
	if el := time.Since(t0).Seconds(); el > 0 {
		ramp.ServerCPU = round2((r.serverCPU() - srv0) / el * 100)
		ramp.ToolCPU = round2((r.toolCPU() - tool0) / el * 100)
	}
	r.mu.Lock()
	ramp.Connect = Summarize(r.connLat[tr])
	r.connLat[tr].Reset()
	r.mu.Unlock()
	return ramp, nil
}

func (r *run) serverCPU() float64 {
	if len(r.pids) == 0 {
		return 0
	}
	_, cpu, err := ReadProcs(r.pids)
	if err != nil {
		return 0
	}
	return cpu
}

func (r *run) toolCPU() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := SelfCPU()
	for _, c := range r.workerCPU {
		t += c
	}
	return t
}

// sampler collects a sample every second until the returned func is called.
func (r *run) sampler() func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if err := r.collect(); err != nil && r.o.Log != nil {
					fmt.Fprintln(r.o.Log, "sample:", err)
				}
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		if r.o.Progress != nil && isTerminal(r.o.Progress) {
			fmt.Fprintln(r.o.Progress)
		}
	}
}

// collect gathers a tick from every fleet and appends a sample.
func (r *run) collect() error {
	r.collectMu.Lock()
	defer r.collectMu.Unlock()
	ticks := make([]Tick, len(r.fleets))
	errs := make([]error, len(r.fleets))
	var wg sync.WaitGroup
	for i, f := range r.fleets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ticks[i], errs[i] = f.Tick()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	interval := NewHistogram()
	var s Sample
	var msgs int64
	for i, t := range ticks {
		s.WS += t.WSUp
		s.SSE += t.SSEUp
		msgs += t.Msgs
		for _, enc := range []struct {
			s string
			h *hdrhistogram.Histogram
		}{{t.Lat, interval}, {t.ConnLatWS, r.connLat[WS]}, {t.ConnLatSSE, r.connLat[SSE]}} {
			h, err := DecodeHistogram(enc.s)
			if err != nil {
				return err
			}
			r.mu.Lock()
			enc.h.Merge(h)
			r.mu.Unlock()
		}
		r.mu.Lock()
		for k, v := range t.Errors {
			r.errs[k] += v
			r.errTotal += v
		}
		r.reconnects += t.Reconnects
		r.drops += t.Drops
		if t.CPU > 0 {
			r.workerCPU[i] = t.CPU
		}
		r.mu.Unlock()
	}
	if r.pub != nil {
		for k, v := range r.pub.takeErrors() {
			r.mu.Lock()
			r.errs[k] += v
			r.errTotal += v
			r.mu.Unlock()
		}
	}
	now := time.Now()
	var rss int64
	var cpu float64
	if len(r.pids) > 0 {
		rss, cpu, _ = ReadProcs(r.pids)
	}
	tool := r.toolCPU()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat.Merge(interval)
	r.msgs += msgs
	dt := now.Sub(r.lastT).Seconds()
	if dt <= 0 {
		dt = 1
	}
	s.T = round2(now.Sub(r.start).Seconds())
	s.Phase = r.phase
	s.MsgsPerSec = round2(float64(msgs) / dt)
	if interval.TotalCount() > 0 {
		p := Summarize(interval)
		s.P50, s.P90, s.P99, s.Max = p.P50, p.P90, p.P99, p.Max
	}
	s.RSSMiB = round2(float64(rss) / 1024)
	if len(r.pids) > 0 {
		s.ServerCPU = round2((cpu - r.lastCPU) / dt * 100)
		r.lastCPU = cpu
	}
	s.ToolCPU = round2((tool - r.lastTool) / dt * 100)
	s.Errors, s.Reconnects = r.errTotal, r.reconnects
	r.lastT, r.lastTool = now, tool
	r.up = [2]int64{s.WS, s.SSE}
	r.samples = append(r.samples, s)
	if r.o.Progress != nil {
		pre, post := "", "\n"
		if isTerminal(r.o.Progress) {
			pre, post = "\r\033[K", ""
		}
		fmt.Fprintf(r.o.Progress, "%s[%s %s] %4.0fs %-11s ws=%d sse=%d msgs/s=%.0f p99=%.1fms rss=%.0fMiB srv=%.0f%% tool=%.0f%% errors=%d%s",
			pre, r.server, r.o.Label, s.T, s.Phase, s.WS, s.SSE, s.MsgsPerSec, s.P99, s.RSSMiB, s.ServerCPU, s.ToolCPU, s.Errors, post)
	}
	return nil
}

// isTerminal reports whether w is a character device (a terminal), where
// the progress line rewrites itself instead of scrolling.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// eachFleet runs fn on every fleet at once and gathers the results in
// fleet order, with every fleet's error joined.
func eachFleet[T any](fleets []fleetClient, fn func(fleetClient) (T, error)) ([]T, error) {
	results := make([]T, len(fleets))
	errs := make([]error, len(fleets))
	var wg sync.WaitGroup
	for i, f := range fleets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = fn(f)
		}()
	}
	wg.Wait()
	return results, errors.Join(errs...)
}
