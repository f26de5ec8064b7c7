package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StormResult is what the storm scenario measured: the victim was
// signalled at time 0 and its clients moved to the survivors.
type StormResult struct {
	// Signal is "term" or "kill"; Victim the signalled node and PID.
	Signal    string   `json:"signal"`
	Victim    string   `json:"victim"`
	VictimPID int      `json:"victim_pid"`
	Survivors []string `json:"survivors"`
	// Connections is the number established on the victim at the signal;
	// Back how many were established again on a survivor.
	Connections int `json:"connections"`
	Back        int `json:"back"`
	// AllBack is Back == Connections within --storm-wait.
	AllBack bool `json:"all_back"`
	// Back50S, Back99S and Back100S are the seconds from the signal until
	// 50 %, 99 % and 100 % of the connections were established on a
	// survivor (-1: not reached within --storm-wait).
	Back50S  float64 `json:"back_50_s"`
	Back99S  float64 `json:"back_99_s"`
	Back100S float64 `json:"back_100_s"`
	// VictimExitS is when the victim process had exited (-1: not seen).
	VictimExitS float64 `json:"victim_exit_s"`
	// PerSurvivor counts the moved connections per survivor.
	PerSurvivor map[string]int `json:"per_survivor"`
	// Refusals are failed reconnects and survivor-side disconnects by
	// cause (HTTP status, close code and reason, timeout...). 0 expected.
	Refusals map[string]int64 `json:"refusals"`
	// VictimCloses is how the victim ended its connections, by cause (a
	// close code, EOF, a reset), with the reason of its disconnect event.
	VictimCloses map[string]int64 `json:"victim_closes"`
	// ReconnectWS and ReconnectSSE are the reconnects' connect latency
	// (dial to first message, history replay included) from the signal on.
	ReconnectWS  Percentiles `json:"reconnect_ws"`
	ReconnectSSE Percentiles `json:"reconnect_sse"`
	// PeakRSSKiB is the survivors' (--pid) highest summed RSS from the
	// signal to the end of publishing, BaseRSSKiB the sum at the signal.
	BaseRSSKiB int64 `json:"base_rss_kib"`
	PeakRSSKiB int64 `json:"peak_rss_kib"`
	// PeakCPU is the survivors' highest CPU over one second, MoveCPU their
	// average while the connections moved (signal to 100 % back), both in
	// percent of one core.
	PeakCPU float64 `json:"peak_cpu_pct"`
	MoveCPU float64 `json:"move_cpu_pct"`
}

// stormSignal maps --storm-signal to a signal.
func stormSignal(s string) (syscall.Signal, error) {
	switch s {
	case "term":
		return syscall.SIGTERM, nil
	case "kill":
		return syscall.SIGKILL, nil
	}
	return 0, fmt.Errorf("--storm-signal %q: use term or kill", s)
}

// moveStatus sums the fleets' storm progress.
func (r *run) moveStatus(withTimes bool) (MoveStatus, error) {
	sts, err := eachFleet(r.fleets, func(f fleetClient) (MoveStatus, error) { return f.Moved(withTimes) })
	sum := MoveStatus{PerTarget: make([]int, len(r.o.StormTargets))}
	for _, st := range sts {
		sum.Total += st.Total
		sum.Moved += st.Moved
		for i, n := range st.PerTarget {
			if i < len(sum.PerTarget) {
				sum.PerTarget[i] += n
			}
		}
		sum.Times = append(sum.Times, st.Times...)
	}
	return sum, err
}

// storm runs the storm scenario's measured phase while the publisher
// publishes: StormAfter of publishing, the signal, the wait until every
// connection is back on a survivor (at most StormWait), StormAfter more.
func (r *run) storm(ctx context.Context) (*StormResult, error) {
	o := r.o
	sig, err := stormSignal(o.StormSignal)
	if err != nil {
		return nil, err
	}
	res := &StormResult{Signal: o.StormSignal, Victim: o.Targets[0], VictimPID: o.StormPID,
		Survivors: o.StormTargets, Back50S: -1, Back99S: -1, Back100S: -1, VictimExitS: -1,
		PerSurvivor: map[string]int{}, Refusals: map[string]int64{}, VictimCloses: map[string]int64{}}
	tp := time.Now()
	var callsP map[string]int64
	if r.redis != nil {
		var err error
		if callsP, err = redisCalls(o.RedisAddrs); err != nil {
			return res, err
		}
	}
	if err := sleepCtx(ctx, o.StormAfter); err != nil {
		return res, err
	}
	before, err := r.moveStatus(false)
	if err != nil {
		return res, err
	}
	res.Connections = before.Total
	if err := r.collect(); err != nil { // reconnect latency counts from the signal on
		return res, err
	}
	r.mu.Lock()
	r.connLat[WS].Reset()
	r.connLat[SSE].Reset()
	r.mu.Unlock()

	// The survivors' peak RSS and CPU, sampled until storm returns.
	peakStop := make(chan struct{})
	var peakWG sync.WaitGroup
	if len(r.pids) > 0 {
		rss, cpu, err := ReadProcs(r.pids)
		if err != nil {
			return res, err
		}
		res.BaseRSSKiB, res.PeakRSSKiB = rss, rss
		peakWG.Go(func() { r.samplePeaks(res, cpu, peakStop) })
	}
	defer func() {
		close(peakStop)
		peakWG.Wait()
	}()

	var calls0 map[string]int64
	if r.redis != nil {
		if calls0, err = redisCalls(o.RedisAddrs); err != nil {
			return res, err
		}
	}
	r.setPhase("storm")
	t0 := time.Now()
	cpu0 := r.serverCPU()
	if err := syscall.Kill(o.StormPID, sig); err != nil {
		return res, fmt.Errorf("storm: signal victim %d: %w", o.StormPID, err)
	}
	if o.Log != nil {
		fmt.Fprintf(o.Log, "storm: sent SIG%s to %d (%s) with %d connections\n",
			strings.ToUpper(o.StormSignal), o.StormPID, o.Targets[0], res.Connections)
	}
	deadline := t0.Add(o.StormWait)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if res.VictimExitS < 0 && processGone(o.StormPID) {
			res.VictimExitS = round2(time.Since(t0).Seconds())
		}
		st, err := r.moveStatus(false)
		if err != nil {
			return res, err
		}
		if st.Moved >= res.Connections || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-tick.C:
		}
	}
	moveEnd := time.Now()
	if r.redis != nil {
		calls1, err := redisCalls(o.RedisAddrs)
		if err != nil {
			return res, err
		}
		_, pubCalls := callsDelta(callsP, calls0)
		pubRate := float64(pubCalls) / t0.Sub(tp).Seconds() // publishing alone, before the signal
		var total int64
		r.redis.Storm, total = callsDelta(calls0, calls1)
		if st, err := r.moveStatus(false); err == nil && st.Moved > 0 {
			r.redis.StormPerReconnect = round2(max(0, float64(total)-pubRate*moveEnd.Sub(t0).Seconds()) / float64(st.Moved))
		}
	}
	if el := moveEnd.Sub(t0).Seconds(); el > 0 && len(r.pids) > 0 {
		res.MoveCPU = round2((r.serverCPU() - cpu0) / el * 100)
	}
	st, err := r.moveStatus(true)
	if err != nil {
		return res, err
	}
	res.Back = st.Moved
	res.AllBack = st.Moved >= res.Connections
	for i, n := range st.PerTarget {
		res.PerSurvivor[o.StormTargets[i]] += n
	}
	res.Back50S, res.Back99S, res.Back100S = backTimes(st.Times, res.Connections, t0)

	r.setPhase("after")
	if err := sleepCtx(ctx, o.StormAfter); err != nil {
		return res, err
	}
	if res.VictimExitS < 0 && processGone(o.StormPID) {
		res.VictimExitS = round2(time.Since(t0).Seconds())
	}
	return res, nil
}

// backTimes returns the seconds after t0 at which 50 %, 99 % and 100 % of
// total connections had moved, given when each moved (-1: not reached). A
// connection that moved before t0 counts at 0.
func backTimes(times []int64, total int, t0 time.Time) (p50, p99, p100 float64) {
	p50, p99, p100 = -1, -1, -1
	if total <= 0 {
		return 0, 0, 0
	}
	ts := slices.Clone(times)
	slices.Sort(ts)
	at := func(frac float64) float64 {
		n := int(math.Ceil(frac * float64(total)))
		if n < 1 {
			n = 1
		}
		if n > len(ts) {
			return -1
		}
		return round2(max(0, float64(ts[n-1]-t0.UnixNano())/1e9))
	}
	return at(0.5), at(0.99), at(1)
}

// samplePeaks records the survivors' highest RSS (every 100 ms) and CPU
// (per second) into res until stop closes.
func (r *run) samplePeaks(res *StormResult, cpu0 float64, stop <-chan struct{}) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	lastT, lastCPU := time.Now(), cpu0
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			rss, cpu, err := ReadProcs(r.pids)
			if err != nil {
				continue
			}
			r.mu.Lock()
			res.PeakRSSKiB = max(res.PeakRSSKiB, rss)
			if dt := now.Sub(lastT).Seconds(); dt >= 1 {
				res.PeakCPU = max(res.PeakCPU, round2((cpu-lastCPU)/dt*100))
				lastT, lastCPU = now, cpu
			}
			r.mu.Unlock()
		}
	}
}

// processGone reports whether pid has exited (no such process, or a
// zombie waiting for its parent).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
}

// splitStormErrors moves the storm's errors out of errs: reconnect
// failures and survivor-side disconnects are refusals, the victim's
// disconnects are how it closed (not errors).
func splitStormErrors(res *StormResult, errs map[string]int64) {
	for k, v := range errs {
		switch {
		case strings.HasPrefix(k, "victim disconnect:"):
			res.VictimCloses[strings.TrimPrefix(k, "victim disconnect: ")] += v
			delete(errs, k)
		case strings.HasPrefix(k, "reconnect:"), strings.HasPrefix(k, "survivor disconnect:"):
			res.Refusals[k] += v
		}
	}
}
