package telemetry

import "github.com/prometheus/client_golang/prometheus"

// ingestCollector reports the channels_redis ingest's counters at scrape
// time (compat keeps them; telemetry cannot import compat).
type ingestCollector struct {
	counts func() map[string]uint64
	desc   *prometheus.Desc
}

// RegisterChannelsRedis adds herald_channels_redis_messages_total{result}
// to m; counts returns the ingest's counters by result (published,
// duplicate, malformed, invalid_utf8, skipped, expired, dropped, ...).
func (m *Metrics) RegisterChannelsRedis(counts func() map[string]uint64) {
	m.Registry.MustRegister(&ingestCollector{counts: counts, desc: prometheus.NewDesc(
		"herald_channels_redis_messages_total",
		"channels_redis messages read by the compat ingest, by result; invalid_utf8 and malformed ones are dropped (logged with the reason).",
		[]string{"result"}, nil)})
}

func (c *ingestCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *ingestCollector) Collect(ch chan<- prometheus.Metric) {
	for result, v := range c.counts() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v), result)
	}
}

// RegisterChannelsRedisRestores adds
// herald_channels_redis_memberships_restored_total: how often a channels
// Redis host was found to have lost this node's group memberships
// (restart without persistence, flush, failover) and they were written
// again.
func (m *Metrics) RegisterChannelsRedisRestores(count func() uint64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "herald_channels_redis_memberships_restored_total",
		Help: "Times a channels Redis host had lost this node's group memberships (restart, flush, failover) and they were written again.",
	}, func() float64 { return float64(count()) }))
}
