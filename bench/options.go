package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Scenarios.
const (
	// ScenarioIdle connects and holds: memory and CPU per idle connection.
	ScenarioIdle = "idle"
	// ScenarioBroadcast publishes to the broadcast channel everyone receives.
	ScenarioBroadcast = "broadcast"
	// ScenarioPerUser publishes to random users.
	ScenarioPerUser = "per-user"
	// ScenarioMixed publishes to broadcast and to random users.
	ScenarioMixed = "mixed"
	// ScenarioChurn closes and reopens connections (fresh, no cursor)
	// while publishing.
	ScenarioChurn = "churn"
	// ScenarioResume drops connections and reconnects them with their
	// cursor while publishing; nothing may be lost or duplicated.
	ScenarioResume = "resume"
	// ScenarioStorm holds every connection on one victim node (Targets),
	// resuming with cursors, while publishing through a surviving node;
	// then signals the victim (StormSignal) and measures how the clients
	// move to the survivors (StormTargets): time until they are back,
	// refusals, and exact loss and duplication across the move.
	ScenarioStorm = "storm"
)

// Scenarios lists the valid scenario names.
var Scenarios = []string{ScenarioIdle, ScenarioBroadcast, ScenarioPerUser, ScenarioMixed, ScenarioChurn, ScenarioResume, ScenarioStorm}

// Options configure a run. Zero values mean the defaults applied by
// Defaults.
type Options struct {
	Scenario string `json:"scenario"`
	// Label names the run in reports (default: the scenario).
	Label string `json:"label"`
	// Targets are the Herald nodes, host:port.
	Targets []string `json:"targets"`
	// PIDs are local server processes whose RSS and CPU are sampled.
	PIDs []int `json:"pids,omitempty"`
	// FloorTargets and FloorPIDs, when set, repeat the run against the
	// yardstick server and report Herald/floor ratios.
	FloorTargets []string `json:"floor_targets,omitempty"`
	FloorPIDs    []int    `json:"floor_pids,omitempty"`

	// WS and SSE are the numbers of connections of each transport.
	WS  int `json:"ws"`
	SSE int `json:"sse"`
	// Rate is the total connects per second of the ramp (0: as fast as
	// possible, bounded by Concurrency per fleet).
	Rate        float64 `json:"connect_rate"`
	Concurrency int     `json:"concurrency"`
	// Secret signs the HS256 tokens; APIKey authenticates publishes.
	Secret string `json:"-"`
	APIKey string `json:"-"`

	// Duration is how long the measured phase lasts (publishing, or
	// holding for idle).
	Duration time.Duration `json:"duration"`
	// BroadcastRate and UserRate are published messages per second.
	BroadcastRate float64 `json:"broadcast_rate"`
	UserRate      float64 `json:"user_rate"`
	// PublishConcurrency is how many publish requests may be in flight at
	// once, drawn from one queue for every stream as a busy backend's
	// request handlers would (default 64); messages of one stream may then
	// arrive out of order. Ignored when PublishOrdered is set.
	PublishConcurrency int `json:"publish_concurrency"`
	// PublishOrdered publishes each stream's messages one at a time, in
	// order (one goroutine per group of streams), so receivers see no
	// reordering caused by the publisher.
	PublishOrdered bool `json:"publish_ordered,omitempty"`
	// Messages, when > 0, stops publishing after that many messages.
	Messages int `json:"messages,omitempty"`
	// PayloadPad pads each payload by this many bytes.
	PayloadPad int `json:"payload_pad"`
	// Settle is the pause after each ramp before memory is sampled.
	Settle time.Duration `json:"settle"`
	// Drain bounds the wait for messages after publishing stops.
	Drain time.Duration `json:"drain"`
	// DropRate is connections dropped per second (resume, churn).
	DropRate float64 `json:"drop_rate,omitempty"`
	// ReconnectDelay bounds the random pause before a reconnect.
	ReconnectDelay time.Duration `json:"reconnect_delay,omitempty"`

	// StormTargets are the surviving nodes of the storm scenario: clients
	// of the victim reconnect to them, spread round-robin as a load
	// balancer would, and the publisher publishes through them.
	StormTargets []string `json:"storm_targets,omitempty"`
	// StormPID is the victim's process id, signalled by the storm scenario.
	StormPID int `json:"storm_pid,omitempty"`
	// StormSignal is "term" (SIGTERM: Herald drains over
	// server.reconnect_window) or "kill" (SIGKILL: a crash).
	StormSignal string `json:"storm_signal,omitempty"`
	// StormAfter is how long publishing runs before the signal, and again
	// after every connection is back, before publishing stops.
	StormAfter time.Duration `json:"storm_after,omitempty"`
	// StormWait bounds the wait for every connection to be back.
	StormWait time.Duration `json:"storm_wait,omitempty"`

	// RedisAddrs are the Redis servers the nodes use (host:port, no auth):
	// the tool reads their INFO commandstats around the connect ramps and
	// the storm and reports the Redis commands per connect.
	RedisAddrs []string `json:"redis,omitempty"`

	// SrcBase is the first client source address (127.0.0.2); later ones
	// count up from it. Empty: let the kernel choose.
	SrcBase string `json:"src_base"`
	// PerIP is the most connections per source address (default
	// DefaultPerIP).
	PerIP int `json:"per_ip"`
	// MaxPerWorker is the most connections one process holds; larger runs
	// start worker processes.
	MaxPerWorker int `json:"max_per_worker"`
	// Workers forces this many worker processes (0: automatic).
	Workers int `json:"workers,omitempty"`
	// WorkerExe is the binary started with --worker (default: this one).
	WorkerExe string `json:"-"`
	// UserPrefix prefixes user ids: connection i is user UserPrefix+i.
	UserPrefix string `json:"user_prefix"`
	// Timeout bounds one connect up to its first message.
	Timeout time.Duration `json:"timeout"`

	// Progress receives the live progress line (nil: none).
	Progress io.Writer `json:"-"`
	// Log receives workers' stderr and notes (nil: discarded).
	Log io.Writer `json:"-"`
}

// Defaults returns o with zero fields set.
func (o Options) Defaults() Options {
	if o.Label == "" {
		o.Label = o.Scenario
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1024
	}
	if o.Duration <= 0 {
		o.Duration = 20 * time.Second
	}
	if o.BroadcastRate == 0 && o.UserRate == 0 {
		switch o.Scenario {
		case ScenarioBroadcast, ScenarioChurn:
			o.BroadcastRate = 1
		case ScenarioPerUser:
			o.UserRate = 100
		case ScenarioMixed, ScenarioResume:
			o.BroadcastRate, o.UserRate = 5, 50
		case ScenarioStorm:
			o.BroadcastRate, o.UserRate = 2, 100
		}
	}
	if o.PublishConcurrency == 0 {
		o.PublishConcurrency = 64
	}
	if o.Settle <= 0 {
		o.Settle = 3 * time.Second
	}
	if o.Drain <= 0 {
		o.Drain = 10 * time.Second
	}
	if o.DropRate == 0 {
		switch o.Scenario {
		case ScenarioResume, ScenarioChurn:
			o.DropRate = float64(o.WS+o.SSE) / 20 // each connection about once per 20 s
		}
	}
	if o.ReconnectDelay <= 0 {
		o.ReconnectDelay = 200 * time.Millisecond
	}
	if o.Scenario == ScenarioStorm {
		if o.StormSignal == "" {
			o.StormSignal = "term"
		}
		if o.StormAfter <= 0 {
			o.StormAfter = 5 * time.Second
		}
		if o.StormWait <= 0 {
			o.StormWait = 60 * time.Second
		}
	}
	if o.PerIP <= 0 {
		o.PerIP = DefaultPerIP
	}
	if o.MaxPerWorker <= 0 {
		o.MaxPerWorker = 15000
	}
	if o.UserPrefix == "" {
		o.UserPrefix = "b"
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	return o
}

// Validate reports what is wrong with o (after Defaults).
func (o Options) Validate() error {
	var errs []error
	valid := false
	for _, s := range Scenarios {
		valid = valid || s == o.Scenario
	}
	if !valid {
		errs = append(errs, fmt.Errorf("scenario %q: use one of %v", o.Scenario, Scenarios))
	}
	if len(o.Targets) == 0 {
		errs = append(errs, errors.New("no target: give --target host:port"))
	}
	for _, t := range append(append([]string(nil), o.Targets...), o.FloorTargets...) {
		if _, _, err := net.SplitHostPort(t); err != nil {
			errs = append(errs, fmt.Errorf("target %q is not host:port", t))
		}
	}
	if o.WS < 0 || o.SSE < 0 || o.WS+o.SSE == 0 {
		errs = append(errs, errors.New("give --ws and/or --sse connections"))
	}
	if o.Secret == "" {
		errs = append(errs, errors.New("--secret is required (the server's auth.jwt.hmac_secret)"))
	}
	if o.Scenario != ScenarioIdle && o.APIKey == "" {
		errs = append(errs, errors.New("--api-key is required to publish"))
	}
	if o.Scenario == ScenarioBroadcast && o.BroadcastRate <= 0 {
		errs = append(errs, errors.New("broadcast needs --broadcast-rate > 0"))
	}
	if o.Scenario == ScenarioPerUser && o.UserRate <= 0 {
		errs = append(errs, errors.New("per-user needs --user-rate > 0"))
	}
	if o.PublishConcurrency < 0 || o.PublishConcurrency > 4096 {
		errs = append(errs, fmt.Errorf("--publish-concurrency %d: use 1 to 4096 (or --publish-ordered)", o.PublishConcurrency))
	}
	if o.BroadcastRate < 0 || o.UserRate < 0 || o.Rate < 0 {
		errs = append(errs, errors.New("rates must not be negative"))
	}
	if o.Scenario == ScenarioStorm {
		errs = append(errs, o.validateStorm()...)
	}
	if o.SrcBase != "" && net.ParseIP(o.SrcBase).To4() == nil {
		errs = append(errs, fmt.Errorf("--src %q is not an IPv4 address", o.SrcBase))
	}
	return errors.Join(errs...)
}

// validateStorm checks the storm scenario's options.
func (o Options) validateStorm() []error {
	var errs []error
	if len(o.Targets) != 1 {
		errs = append(errs, fmt.Errorf("storm: give exactly one --target (the victim), not %d", len(o.Targets)))
	}
	if len(o.StormTargets) == 0 {
		errs = append(errs, errors.New("storm: give the surviving nodes with --storm-target host:port"))
	}
	for _, t := range o.StormTargets {
		if _, _, err := net.SplitHostPort(t); err != nil {
			errs = append(errs, fmt.Errorf("storm target %q is not host:port", t))
		}
		for _, v := range o.Targets {
			if t == v {
				errs = append(errs, fmt.Errorf("storm target %s is the victim (--target)", t))
			}
		}
	}
	if o.StormPID <= 0 {
		errs = append(errs, errors.New("storm: give the victim's process id with --storm-pid"))
	}
	for _, p := range o.PIDs {
		if p == o.StormPID {
			errs = append(errs, fmt.Errorf("storm: --pid %d is the victim; give the survivors' pids (the receiving nodes)", p))
		}
	}
	if _, err := stormSignal(o.StormSignal); err != nil {
		errs = append(errs, err)
	}
	if len(o.FloorTargets) > 0 {
		errs = append(errs, errors.New("storm: --compare-floor does not apply (the floor has no cursors)"))
	}
	if o.BroadcastRate <= 0 && o.UserRate <= 0 {
		errs = append(errs, errors.New("storm: publish something (--broadcast-rate and/or --user-rate)"))
	}
	return errs
}

// sourceIPs returns n consecutive IPv4 addresses from base.
func sourceIPs(base string, n int) []string {
	if base == "" || n <= 0 {
		return nil
	}
	ip := net.ParseIP(base).To4()
	v := uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
	out := make([]string, n)
	for i := range out {
		a := v + uint32(i)
		out[i] = net.IPv4(byte(a>>24), byte(a>>16), byte(a>>8), byte(a)).String()
	}
	return out
}

// DefaultPerIP is how many connections share one source address by
// default. Sockets bind with IP_BIND_ADDRESS_NO_PORT, so the kernel picks
// the port in connect(2) by probing the ephemeral range for a free
// 4-tuple: the more ports a source address already holds towards the
// server, the longer each connect searches. With 25,000 per address the
// second ramp of a run (SSE after 10,000 WS) spent 45 % of the tool's CPU
// in connect(2) and ran at 4,000–6,700 connects/s against 8,300 for the
// first; with 4,000 both ramps run at ~8,100/s (127.0.0.0/8 has addresses
// to spare).
const DefaultPerIP = 4000
