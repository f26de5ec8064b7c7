package bench

import (
	"encoding/base64"
	"fmt"
	"math"
	"sync"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds from 1 µs to 60 s with three
// significant digits (0.1 % resolution).
const (
	latLowest  = 1
	latHighest = 60_000_000
	latSigFig  = 3
)

// NewHistogram returns an empty latency histogram (microseconds).
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(latLowest, latHighest, latSigFig)
}

// recShards spreads concurrent recording over independently locked
// histograms.
const recShards = 16

// Recorder collects latencies from many goroutines. Drain returns what was
// recorded since the previous Drain, so one recorder serves both the
// per-second series and (merged by the caller) the whole run.
type Recorder struct {
	shards [recShards]recShard
}

type recShard struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
	_  [40]byte // keep shards on separate cache lines
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	r := &Recorder{}
	for i := range r.shards {
		r.shards[i].h = NewHistogram()
	}
	return r
}

// Record records one latency in microseconds; key picks the shard (any
// value, e.g. a connection index). Values outside the range are clamped.
func (r *Recorder) Record(key int, us int64) {
	us = max(latLowest, min(us, latHighest))
	s := &r.shards[uint(key)%recShards]
	s.mu.Lock()
	_ = s.h.RecordValue(us)
	s.mu.Unlock()
}

// Drain returns everything recorded since the last Drain and resets the
// recorder.
func (r *Recorder) Drain() *hdrhistogram.Histogram {
	out := NewHistogram()
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		if s.h.TotalCount() > 0 {
			out.Merge(s.h)
			s.h.Reset()
		}
		s.mu.Unlock()
	}
	return out
}

// EncodeHistogram encodes h in the HdrHistogram V2 compressed format,
// base64: compact enough to ship every second from a worker and to keep in
// the JSON results for later analysis.
func EncodeHistogram(h *hdrhistogram.Histogram) (string, error) {
	if h == nil || h.TotalCount() == 0 {
		return "", nil
	}
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return "", fmt.Errorf("encode histogram: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// DecodeHistogram reverses EncodeHistogram; "" decodes to an empty
// histogram.
func DecodeHistogram(s string) (*hdrhistogram.Histogram, error) {
	if s == "" {
		return NewHistogram(), nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("decode histogram: %w", err)
	}
	h, err := hdrhistogram.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("decode histogram: %w", err)
	}
	return h, nil
}

// Percentiles summarises a latency histogram, in milliseconds.
type Percentiles struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min_ms"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	P9999 float64 `json:"p9999_ms"`
	Max   float64 `json:"max_ms"`
}

func usToMs(us int64) float64 { return math.Round(float64(us)) / 1000 }

// Summarize returns the percentiles of h (all zero when h is empty).
func Summarize(h *hdrhistogram.Histogram) Percentiles {
	if h == nil || h.TotalCount() == 0 {
		return Percentiles{}
	}
	return Percentiles{
		Count: h.TotalCount(),
		Min:   usToMs(h.Min()),
		Mean:  math.Round(h.Mean()) / 1000,
		P50:   usToMs(h.ValueAtQuantile(50)),
		P90:   usToMs(h.ValueAtQuantile(90)),
		P99:   usToMs(h.ValueAtQuantile(99)),
		P999:  usToMs(h.ValueAtQuantile(99.9)),
		P9999: usToMs(h.ValueAtQuantile(99.99)),
		Max:   usToMs(h.Max()),
	}
}

// SpectrumPoint is one point of a percentile spectrum: the latency below
// which Percentile % of the messages arrived.
type SpectrumPoint struct {
	Percentile float64 `json:"percentile"`
	Ms         float64 `json:"ms"`
}

// spectrumPercentiles are the points kept for the distribution chart,
// denser towards the tail.
var spectrumPercentiles = []float64{0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 96.875, 98, 99, 99.5, 99.75, 99.9, 99.95, 99.99, 99.995, 99.999, 100}

// Spectrum returns the percentile spectrum of h (nil when empty).
func Spectrum(h *hdrhistogram.Histogram) []SpectrumPoint {
	if h == nil || h.TotalCount() == 0 {
		return nil
	}
	out := make([]SpectrumPoint, 0, len(spectrumPercentiles))
	for _, p := range spectrumPercentiles {
		v := h.ValueAtQuantile(p)
		if p == 0 {
			v = h.Min()
		}
		out = append(out, SpectrumPoint{Percentile: p, Ms: usToMs(v)})
	}
	return out
}
