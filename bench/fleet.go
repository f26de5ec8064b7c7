package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/edge/auth"
)

// FleetSpec describes the connections one fleet holds. Connections are
// numbered globally: indices [0, WS) are WebSockets, [WS, WS+SSE) SSE
// streams, and connection i belongs to user UserPrefix+i. Fleet Index of
// Count holds the indices i with i % Count == Index, so every fleet has
// its share of both transports.
type FleetSpec struct {
	Index, Count int
	WS, SSE      int
	// Targets are the servers' host:port; connection i uses
	// Targets[i % len(Targets)].
	Targets []string
	// SrcIPs are the client source addresses; connection i uses
	// SrcIPs[i % len(SrcIPs)]. Empty: the kernel's choice.
	SrcIPs []string
	// Secret signs each connection's HS256 token.
	Secret     string
	TokenTTL   time.Duration
	UserPrefix string
	// Envelope selects the WebSocket envelope format (needed for cursors).
	Envelope bool
	// Resume keeps each connection's cursor and reconnects with it.
	Resume bool
	// ReconnectOnLoss reconnects connections the server closed too (not
	// only the ones the fleet dropped).
	ReconnectOnLoss bool
	// ReconnectDelay is the upper bound of the random pause before a
	// dropped connection reconnects.
	ReconnectDelay time.Duration
	// ReconnectTargets, when set, are where connections go when they
	// reconnect (the storm scenario's survivors), taken round-robin as a
	// load balancer would; the first connect still uses Targets.
	ReconnectTargets []string
	// HonorRetry makes a connection the server closed wait the reconnect
	// delay its final disconnect event asked for (retry_ms), as Herald's
	// JavaScript client does, instead of ReconnectDelay. (The SSE stream's
	// "retry:" field, which a bare EventSource would wait, is ignored.)
	HonorRetry bool
	// Concurrency bounds connects in flight.
	Concurrency int
	// Rate is this fleet's connects per second (0: as fast as possible).
	Rate float64
	// Timeout bounds one connect, up to the first message.
	Timeout time.Duration
}

// PhaseResult is the outcome of one fleet's connect ramp.
type PhaseResult struct {
	Attempted int   `json:"attempted"`
	OK        int   `json:"ok"`
	Failed    int   `json:"failed"`
	StartNS   int64 `json:"start_ns"`
	EndNS     int64 `json:"end_ns"`
}

// Tick is what a fleet reports every second: gauges, and counters and
// histograms since the previous tick.
type Tick struct {
	WSUp       int64            `json:"ws_up"`
	SSEUp      int64            `json:"sse_up"`
	Msgs       int64            `json:"msgs"`
	Reconnects int64            `json:"reconnects"`
	Drops      int64            `json:"drops"`
	Errors     map[string]int64 `json:"errors,omitempty"`
	Lat        string           `json:"lat,omitempty"`
	ConnLatWS  string           `json:"conn_lat_ws,omitempty"`
	ConnLatSSE string           `json:"conn_lat_sse,omitempty"`
	// CPU is the fleet process's own CPU seconds so far (workers only).
	CPU float64 `json:"cpu"`
}

// Expectations tell fleets what every receiver should have received.
type Expectations struct {
	// Account is false when loss accounting does not apply (churn).
	Account   bool              `json:"account"`
	Broadcast StreamExpectation `json:"broadcast"`
	// UserMax[i] is the last sequence number published to user i.
	UserMax []uint64 `json:"user_max,omitempty"`
	// UserFailed lists per user the publishes that were not acknowledged.
	UserFailed map[int][]uint64 `json:"user_failed,omitempty"`
	// Drain is how long to wait for stragglers.
	Drain time.Duration `json:"drain"`
}

// FleetResult is a fleet's final accounting.
type FleetResult struct {
	Broadcast Delivery `json:"broadcast"`
	User      Delivery `json:"user"`
	// Receivers is the number of connections accounted.
	Receivers int `json:"receivers"`
	// DrainedIn is how long the drain took.
	DrainedIn time.Duration `json:"drained_in"`
}

// MoveStatus is where a fleet's connections stand in a storm: how many
// were ever established, how many are established on a reconnect target
// (moved), and optionally when each moved.
type MoveStatus struct {
	// Total is the number of connections established at least once.
	Total int `json:"total"`
	// Moved is the number established (at least once) on a reconnect
	// target after the first connect.
	Moved int `json:"moved"`
	// PerTarget[i] counts the moved connections whose first session on a
	// reconnect target was on ReconnectTargets[i].
	PerTarget []int `json:"per_target"`
	// Times are the unix nanoseconds at which each moved connection was
	// first established on a reconnect target (only when asked for).
	Times []int64 `json:"times,omitempty"`
}

// Fleet holds a share of a run's connections in this process.
type Fleet struct {
	spec  FleetSpec
	conns []*clientConn
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup

	closing    atomic.Bool
	up         [2]atomic.Int64
	msgs       atomic.Int64
	reconnects atomic.Int64
	drops      atomic.Int64
	lat        *Recorder
	connLat    [2]*Recorder

	emu  sync.Mutex
	errs map[string]int64

	dmu      sync.Mutex
	dropStop chan struct{}

	next atomic.Uint64 // round-robin over ReconnectTargets
}

// NewFleet builds the fleet's connections and signs their tokens (signing
// is not part of the measured ramp).
func NewFleet(spec FleetSpec) (*Fleet, error) {
	if spec.Count < 1 || spec.Index < 0 || spec.Index >= spec.Count {
		return nil, fmt.Errorf("fleet %d of %d: bad index", spec.Index, spec.Count)
	}
	if len(spec.Targets) == 0 {
		return nil, fmt.Errorf("fleet: no targets")
	}
	if spec.Timeout <= 0 {
		spec.Timeout = 10 * time.Second
	}
	if spec.Concurrency <= 0 {
		spec.Concurrency = 256
	}
	if spec.TokenTTL <= 0 {
		spec.TokenTTL = 24 * time.Hour
	}
	var srcs []net.IP
	for _, s := range spec.SrcIPs {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("fleet: bad source address %q", s)
		}
		srcs = append(srcs, ip)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Fleet{spec: spec, ctx: ctx, stop: cancel, lat: NewRecorder(), errs: map[string]int64{}}
	f.connLat[WS], f.connLat[SSE] = NewRecorder(), NewRecorder()
	total := spec.WS + spec.SSE
	for i := spec.Index; i < total; i += spec.Count {
		user := fmt.Sprintf("%s%d", spec.UserPrefix, i)
		tok, err := auth.Sign(spec.Secret, "HS256", user, spec.TokenTTL, nil)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("fleet: token for %s: %w", user, err)
		}
		tr := WS
		if i >= spec.WS {
			tr = SSE
		}
		d := dialSpec{transport: tr, host: spec.Targets[i%len(spec.Targets)], token: tok,
			envelope: spec.Envelope, timeout: spec.Timeout}
		if len(srcs) > 0 {
			d.src = srcs[i%len(srcs)]
		}
		f.conns = append(f.conns, &clientConn{idx: i, spec: d, f: f})
	}
	return f, nil
}

func (f *Fleet) addError(cause string) {
	f.emu.Lock()
	f.errs[cause]++
	f.emu.Unlock()
}

// Connect opens this fleet's connections of transport tr, at the fleet's
// rate, and returns when each has either received its first message or
// failed.
func (f *Fleet) Connect(tr Transport) PhaseResult {
	var todo []*clientConn
	for _, c := range f.conns {
		if c.spec.transport == tr {
			todo = append(todo, c)
		}
	}
	res := PhaseResult{Attempted: len(todo), StartNS: time.Now().UnixNano()}
	if len(todo) == 0 {
		res.EndNS = res.StartNS
		return res
	}
	var ok, failed atomic.Int64
	sem := make(chan struct{}, f.spec.Concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for n, c := range todo {
		if f.spec.Rate > 0 {
			due := start.Add(time.Duration(float64(n) / f.spec.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		sem <- struct{}{}
		wg.Add(1)
		first := make(chan error, 1)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			c.run(f.ctx, first)
		}()
		go func() {
			defer wg.Done()
			err := <-first
			<-sem
			if err != nil {
				failed.Add(1)
				f.addError(errorCause("connect", err))
				return
			}
			ok.Add(1)
		}()
	}
	wg.Wait()
	res.EndNS = time.Now().UnixNano()
	res.OK, res.Failed = int(ok.Load()), int(failed.Load())
	return res
}

// Tick returns the gauges and everything counted since the last Tick.
func (f *Fleet) Tick() (Tick, error) {
	t := Tick{
		WSUp: f.up[WS].Load(), SSEUp: f.up[SSE].Load(),
		Msgs: f.msgs.Swap(0), Reconnects: f.reconnects.Swap(0), Drops: f.drops.Swap(0),
	}
	f.emu.Lock()
	if len(f.errs) > 0 {
		t.Errors, f.errs = f.errs, map[string]int64{}
	}
	f.emu.Unlock()
	var err error
	if t.Lat, err = EncodeHistogram(f.lat.Drain()); err != nil {
		return t, err
	}
	if t.ConnLatWS, err = EncodeHistogram(f.connLat[WS].Drain()); err != nil {
		return t, err
	}
	if t.ConnLatSSE, err = EncodeHistogram(f.connLat[SSE].Drain()); err != nil {
		return t, err
	}
	return t, nil
}

// SetDropping starts (rate > 0) or stops (rate 0) closing random
// established connections at rate per second; they reconnect by themselves
// (with their cursor when the fleet resumes).
func (f *Fleet) SetDropping(rate float64) {
	f.dmu.Lock()
	defer f.dmu.Unlock()
	if f.dropStop != nil {
		close(f.dropStop)
		f.dropStop = nil
	}
	if rate <= 0 || len(f.conns) == 0 {
		return
	}
	stop := make(chan struct{})
	f.dropStop = stop
	go func() {
		const step = 20 * time.Millisecond
		t := time.NewTicker(step)
		defer t.Stop()
		start, done := time.Now(), 0
		for {
			select {
			case <-stop:
				return
			case <-f.ctx.Done():
				return
			case now := <-t.C:
				due := int(now.Sub(start).Seconds() * rate)
				for ; done < due; done++ {
					for range 8 { // a few tries to find an established one
						if f.conns[rand.IntN(len(f.conns))].drop() {
							f.drops.Add(1)
							break
						}
					}
				}
			}
		}
	}()
}

// Finish waits up to exp.Drain for every expected message, then accounts
// every receiver against exp.
func (f *Fleet) Finish(exp Expectations) FleetResult {
	start := time.Now()
	var res FleetResult
	if !exp.Account {
		return res
	}
	want := uint64(0)
	var receivers []*clientConn
	for _, c := range f.conns {
		c.mu.Lock()
		ever := c.everUp
		c.mu.Unlock()
		if !ever {
			continue // its connect failed: counted as a connect error, not as loss
		}
		receivers = append(receivers, c)
		want += exp.Broadcast.Max
		if c.idx < len(exp.UserMax) {
			want += exp.UserMax[c.idx]
		}
	}
	deadline := start.Add(exp.Drain)
	for {
		got := uint64(0)
		for _, c := range receivers {
			c.mu.Lock()
			got += c.bcast.Received() + c.user.Received()
			c.mu.Unlock()
		}
		if got >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.DrainedIn = time.Since(start)
	for _, c := range receivers {
		c.mu.Lock()
		res.Broadcast.Add(c.bcast.Account(exp.Broadcast))
		var ue StreamExpectation
		if c.idx < len(exp.UserMax) {
			ue = StreamExpectation{Max: exp.UserMax[c.idx], Failed: exp.UserFailed[c.idx]}
		}
		res.User.Add(c.user.Account(ue))
		c.mu.Unlock()
		res.Receivers++
	}
	return res
}

// Moved reports how many connections were established on a reconnect
// target, and when (withTimes).
func (f *Fleet) Moved(withTimes bool) MoveStatus {
	st := MoveStatus{PerTarget: make([]int, len(f.spec.ReconnectTargets))}
	for _, c := range f.conns {
		c.mu.Lock()
		ever, at, to := c.everUp, c.movedNS, c.movedTo
		c.mu.Unlock()
		if !ever {
			continue
		}
		st.Total++
		if at == 0 {
			continue
		}
		st.Moved++
		if to >= 0 && to < len(st.PerTarget) {
			st.PerTarget[to]++
		}
		if withTimes {
			st.Times = append(st.Times, at)
		}
	}
	return st
}

// reconnectHost picks the host of a reconnect: the next reconnect target,
// or the connection's own target when there are none. The index is -1 for
// the connection's own target.
func (f *Fleet) reconnectHost(own string) (string, int) {
	ts := f.spec.ReconnectTargets
	if len(ts) == 0 {
		return own, -1
	}
	i := int((f.next.Add(1) - 1) % uint64(len(ts)))
	return ts[i], i
}

// Close closes every connection and waits for their goroutines.
func (f *Fleet) Close() {
	f.SetDropping(0)
	f.closing.Store(true)
	f.stop()
	for _, c := range f.conns {
		c.closeNow()
	}
	f.wg.Wait()
}
