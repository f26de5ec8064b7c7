package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Result is the outcome of one invocation: the run against Herald and,
// when asked for, the same run against the floor server.
type Result struct {
	Tool    string     `json:"tool"`
	Started time.Time  `json:"started"`
	Machine Machine    `json:"machine"`
	Options Options    `json:"options"`
	Herald  *RunResult `json:"herald"`
	Floor   *RunResult `json:"floor,omitempty"`
	// Ratios are Herald/floor for the headline figures.
	Ratios map[string]float64 `json:"ratios,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int     `json:"cpus"`
	MemGiB    float64 `json:"mem_gib"`
	GoVersion string  `json:"go_version"`
	Kernel    string  `json:"kernel"`
	NoFile    string  `json:"nofile"`
}

// RunResult is one run against one server (Herald or the floor).
type RunResult struct {
	Server   string   `json:"server"` // "herald" or "floor"
	Targets  []string `json:"targets"`
	Scenario string   `json:"scenario"`
	Fleets   int      `json:"fleets"`
	Workers  bool     `json:"workers"`
	SrcIPs   []string `json:"src_ips,omitempty"`
	// Ramp is per transport ("ws", "sse").
	Ramp map[string]*Ramp `json:"ramp"`
	// Memory is the servers' RSS.
	Memory Memory `json:"memory"`
	// ServerCPU is the servers' CPU during the measured phase, in percent
	// of one core.
	ServerCPU float64 `json:"server_cpu_pct"`
	// ToolCPU is this tool's CPU (all its processes) during the measured
	// phase, in percent of one core.
	ToolCPU float64 `json:"tool_cpu_pct"`
	// Measured is the length of the measured phase.
	Measured time.Duration `json:"measured"`

	Published  Published `json:"published"`
	Broadcast  Delivery  `json:"broadcast"`
	User       Delivery  `json:"user"`
	Total      Delivery  `json:"total"`
	Accounting bool      `json:"accounting"`
	Receivers  int       `json:"receivers"`
	DrainedIn  string    `json:"drained_in"`

	// Latency is publish→receive over the whole run.
	Latency   Percentiles     `json:"latency"`
	Spectrum  []SpectrumPoint `json:"spectrum,omitempty"`
	Histogram string          `json:"histogram,omitempty"` // HdrHistogram V2, base64

	Messages   int64            `json:"messages_received"`
	Reconnects int64            `json:"reconnects"`
	Drops      int64            `json:"drops"`
	Errors     map[string]int64 `json:"errors"`
	// Redis is the Redis commands per connect (with --redis).
	Redis *RedisCommands `json:"redis,omitempty"`
	// Storm is the storm scenario's outcome (nil for other scenarios).
	Storm   *StormResult `json:"storm,omitempty"`
	Samples []Sample     `json:"samples"`
	// LoadAvg is /proc/loadavg at the start and the end of the run: other
	// work on the machine skews every figure.
	LoadAvg [2]string `json:"loadavg"`
}

// Ramp is one transport's connect ramp.
type Ramp struct {
	Attempted int         `json:"attempted"`
	OK        int         `json:"ok"`
	Failed    int         `json:"failed"`
	Seconds   float64     `json:"seconds"`
	PerSec    float64     `json:"per_sec"`
	Connect   Percentiles `json:"connect_latency"`
	// ServerCPU and ToolCPU are the CPU used during the ramp, in percent
	// of one core: on a small machine the two compete.
	ServerCPU float64 `json:"server_cpu_pct"`
	ToolCPU   float64 `json:"tool_cpu_pct"`
}

// Memory is the servers' resident memory at the phase boundaries.
type Memory struct {
	BaselineKiB int64 `json:"baseline_kib"`
	AfterWSKiB  int64 `json:"after_ws_kib"`
	AfterSSEKiB int64 `json:"after_sse_kib"`
	EndKiB      int64 `json:"end_kib"`
	// KiBPerWS is (AfterWS - Baseline) / WS connections.
	KiBPerWS float64 `json:"kib_per_ws"`
	// KiBPerSSE is (AfterSSE - AfterWS) / SSE connections.
	KiBPerSSE float64 `json:"kib_per_sse"`
	// Measured is false when no --pid was given.
	Measured bool `json:"measured"`
}

// Published is what the publisher did.
type Published struct {
	OK     int64 `json:"ok"`
	Failed int64 `json:"failed"`
	// Unsent counts scheduled messages never sent because the publish API
	// was slower than the schedule (in ordered mode the publisher sends
	// each stream's messages one at a time; otherwise Concurrency at a
	// time).
	Unsent int64 `json:"unsent"`
	// Concurrency is the most publish requests in flight; 0 means ordered
	// mode (each stream one at a time).
	Concurrency int `json:"concurrency"`
	// Requested is the scheduled rate, PerSec the acknowledged one.
	Requested float64 `json:"requested_per_sec"`
	PerSec    float64 `json:"per_sec"`
	Broadcast uint64  `json:"broadcast"`
	User      uint64  `json:"user"`
	// Latency is the publish API call's latency (request sent to 200
	// received), HDR percentiles, next to the run's delivery Latency.
	Latency Percentiles `json:"api_latency"`
}

// Sample is one second of a run.
type Sample struct {
	T          float64 `json:"t"`
	Phase      string  `json:"phase"`
	WS         int64   `json:"ws"`
	SSE        int64   `json:"sse"`
	MsgsPerSec float64 `json:"msgs_per_s"`
	P50        float64 `json:"p50_ms"`
	P90        float64 `json:"p90_ms"`
	P99        float64 `json:"p99_ms"`
	Max        float64 `json:"max_ms"`
	RSSMiB     float64 `json:"rss_mib"`
	ServerCPU  float64 `json:"server_cpu_pct"`
	ToolCPU    float64 `json:"tool_cpu_pct"`
	Errors     int64   `json:"errors"`
	Reconnects int64   `json:"reconnects"`
}

// MachineInfo describes this machine.
func MachineInfo() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				kib, _ := strconv.ParseFloat(f[1], 64)
				m.MemGiB = float64(int(kib/1024/1024*10)) / 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/self/limits"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "Max open files") {
				f := strings.Fields(l)
				if len(f) >= 5 {
					m.NoFile = f[3] + "/" + f[4]
				}
			}
		}
	}
	return m
}

// WriteJSON writes r to path, indented.
func (r *Result) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// ReadResult reads a results file written by WriteJSON.
func ReadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("results %s: %w", path, err)
	}
	return &r, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return float64(int(a/b*100+0.5)) / 100
}

// computeRatios returns Herald/floor for the headline figures that both
// runs measured.
func computeRatios(h, f *RunResult) map[string]float64 {
	out := map[string]float64{}
	put := func(k string, a, b float64) {
		if a > 0 && b > 0 {
			out[k] = ratio(a, b)
		}
	}
	put("kib_per_ws", h.Memory.KiBPerWS, f.Memory.KiBPerWS)
	put("kib_per_sse", h.Memory.KiBPerSSE, f.Memory.KiBPerSSE)
	if h.Ramp["ws"] != nil && f.Ramp["ws"] != nil {
		put("ws_connects_per_s", h.Ramp["ws"].PerSec, f.Ramp["ws"].PerSec)
	}
	if h.Ramp["sse"] != nil && f.Ramp["sse"] != nil {
		put("sse_connects_per_s", h.Ramp["sse"].PerSec, f.Ramp["sse"].PerSec)
	}
	put("latency_p50", h.Latency.P50, f.Latency.P50)
	put("latency_p99", h.Latency.P99, f.Latency.P99)
	put("latency_max", h.Latency.Max, f.Latency.Max)
	put("server_cpu", h.ServerCPU, f.ServerCPU)
	return out
}

// LoadAvg returns the first three fields of /proc/loadavg.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
