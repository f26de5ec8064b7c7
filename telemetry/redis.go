package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldrt/herald/fanout"
)

// redisSource is the part of fanout.RedisBroker the collector reads.
type redisSource interface {
	Stats() fanout.RedisStats
	ShardHealth() []fanout.ShardHealth
}

// redisCollector reports the Redis broker's counters and shard health at
// scrape time, so the broker needs no metrics code of its own.
type redisCollector struct {
	src                                             redisSource
	dropped, reconnects, probeFail, recovered, subs *prometheus.Desc
	up, subscribed                                  *prometheus.Desc
}

// RegisterRedis adds the Redis broker's metrics to m.
func (m *Metrics) RegisterRedis(src redisSource) {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	m.Registry.MustRegister(&redisCollector{
		src:        src,
		dropped:    d("herald_redis_inbound_dropped_total", "Pub/sub messages dropped by a full inbound queue (re-read from the stream)."),
		reconnects: d("herald_redis_pubsub_reconnects_total", "Pub/sub connections re-established after a failure."),
		probeFail:  d("herald_redis_probe_failures_total", "Pub/sub probes that did not come back in time."),
		recovered:  d("herald_redis_recovered_messages_total", "Messages delivered from a stream read after a reconnect, drop or gap."),
		subs:       d("herald_redis_subscribe_commands_total", "SUBSCRIBE/SSUBSCRIBE commands sent (batched)."),
		up:         d("herald_redis_shard_up", "1 when the shard's pub/sub connection is up and subscribed.", "shard"),
		subscribed: d("herald_redis_shard_subscriptions", "Channels subscribed on the shard.", "shard"),
	})
}

func (c *redisCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.dropped, c.reconnects, c.probeFail, c.recovered, c.subs, c.up, c.subscribed} {
		ch <- d
	}
}

func (c *redisCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	for d, v := range map[*prometheus.Desc]uint64{c.dropped: s.Dropped, c.reconnects: s.Reconnects, c.probeFail: s.ProbeFailures, c.recovered: s.Recovered, c.subs: s.SubscribeCommands} {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	for _, h := range c.src.ShardHealth() {
		up := 0.0
		if h.Healthy {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, h.Addr)
		ch <- prometheus.MustNewConstMetric(c.subscribed, prometheus.GaugeValue, float64(h.Subscriptions), h.Addr)
	}
}
