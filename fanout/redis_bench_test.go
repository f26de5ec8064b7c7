package fanout

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkRedisPublishDeliver measures publish → handler throughput
// through real redis-servers: each op is one Publish on one node and its
// delivery to the Handler of another node subscribed to all channels.
func BenchmarkRedisPublishDeliver(b *testing.B) {
	for _, shards := range []int{1, 3} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			_, addrs := startShards(b, shards)
			prefix := testPrefix(b)
			var got atomic.Int64
			var target atomic.Int64
			done := make(chan struct{}, 1)
			h := func(*Message) {
				if got.Add(1) == target.Load() {
					done <- struct{}{}
				}
			}
			cfg := RedisConfig{Shards: addrs, Prefix: prefix, HistorySize: 1000}
			pub := newTestRedis(b, cfg, nil)
			sub := newTestRedis(b, cfg, h)
			ctx := context.Background()
			chans := make([]string, 64)
			for i := range chans {
				chans[i] = "bench" + strconv.Itoa(i)
			}
			if err := sub.Subscribe(ctx, chans...); err != nil {
				b.Fatal(err)
			}
			data := []byte(`{"price":101.25,"symbol":"HRLD","seq":123456}`)
			target.Store(int64(b.N))
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(8) // publishers per GOMAXPROCS: keep Redis pipelines busy
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ch := chans[int(next.Add(1))%len(chans)]
					if _, err := pub.Publish(ctx, ch, data, PublishOptions{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				b.Fatalf("delivered %d of %d", got.Load(), b.N)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
