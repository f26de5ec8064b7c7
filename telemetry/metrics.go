// Package telemetry holds Herald's metrics (Prometheus, on /metrics) and
// the pieces other packages use to report into them. Each Server owns its
// own registry: there is no global state, and several nodes in one test
// process do not mix their figures.
package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/heraldrt/herald/internal/buildinfo"
)

// Transports indexes per-transport metrics: 0 is WebSocket, 1 is SSE.
var Transports = [2]string{"ws", "sse"}

// Metrics are one node's metrics. Its fields are pre-resolved label
// values, so the delivery path never looks up a label.
type Metrics struct {
	Registry *prometheus.Registry

	Connections    *prometheus.GaugeVec
	Connects       *prometheus.CounterVec
	Disconnects    *prometheus.CounterVec
	Rejections     *prometheus.CounterVec
	Published      *prometheus.CounterVec
	PublishErrors  prometheus.Counter
	Delivered      [2]prometheus.Counter
	DeliveryTime   [2]prometheus.Observer
	Coalesced      prometheus.Counter
	SlowConsumers  prometheus.Counter
	StreamResets   *prometheus.CounterVec
	HistoryReplays prometheus.Counter
}

// latencyBuckets cover publish→socket-write latency from 100µs to 10s:
// in-memory delivery sits in the sub-millisecond buckets, Redis and busy
// broadcasts in the tens of milliseconds, stuck clients at the top.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// NewMetrics creates a node's metrics in a fresh registry that also holds
// the Go runtime and process collectors.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{Registry: r}
	f := func(c prometheus.Collector) { r.MustRegister(c) }
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	bi := buildinfo.Get()
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "herald_build_info", Help: "Always 1; the labels say which build runs (version, commit, Go version).",
		ConstLabels: prometheus.Labels{"version": bi.Version, "commit": bi.Commit, "goversion": bi.GoVersion}}, func() float64 { return 1 }))
	m.Connections = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "herald_connections", Help: "Open client connections by transport."}, []string{"transport"})
	m.Connects = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_connects_total", Help: "Accepted client connections by transport."}, []string{"transport"})
	m.Disconnects = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_disconnects_total", Help: "Ended client connections by transport and reason (client_closed, token_expired, slow_consumer, shutdown, ...)."}, []string{"transport", "reason"})
	m.Rejections = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_admission_rejections_total", Help: "Refused connects by reason (missing_token, token_expired, too_many_connections, rate_limited, ...)."}, []string{"reason"})
	m.Published = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_messages_published_total", Help: "Messages published through this node's API, by outcome (new or duplicate)."}, []string{"outcome"})
	m.PublishErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "herald_publish_errors_total", Help: "Publishes the broker refused."})
	delivered := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_messages_delivered_total", Help: "Messages written to client sockets, by transport."}, []string{"transport"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "herald_delivery_latency_seconds", Help: "Time from publish to the socket write, by transport.", Buckets: latencyBuckets}, []string{"transport"})
	for i, t := range Transports {
		m.Delivered[i] = delivered.WithLabelValues(t)
		m.DeliveryTime[i] = latency.WithLabelValues(t)
	}
	m.Coalesced = prometheus.NewCounter(prometheus.CounterOpts{Name: "herald_messages_coalesced_total", Help: "Queued messages superseded by newer ones for slow clients."})
	m.SlowConsumers = prometheus.NewCounter(prometheus.CounterOpts{Name: "herald_slow_consumers_total", Help: "Connections closed because their queue overflowed (their backlog is dropped; clients resume from the cursor)."})
	m.StreamResets = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_stream_resets_total", Help: "stream_reset events sent, by reason."}, []string{"reason"})
	m.HistoryReplays = prometheus.NewCounter(prometheus.CounterOpts{Name: "herald_history_replayed_messages_total", Help: "Messages replayed from history on resume or gap recovery."})
	for _, c := range []prometheus.Collector{m.Connections, m.Connects, m.Disconnects, m.Rejections, m.Published, m.PublishErrors,
		delivered, latency, m.Coalesced, m.SlowConsumers, m.StreamResets, m.HistoryReplays} {
		f(c)
	}
	return m
}

// TransportIndex returns the index of transport name in Transports.
func TransportIndex(name string) int {
	if name == "sse" {
		return 1
	}
	return 0
}
