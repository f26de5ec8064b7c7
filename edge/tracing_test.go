package edge

import (
	"net/http"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/heraldrt/herald/telemetry"
)

// TestTracePublishToDeliveryAcrossNodes: a publish on node A that carries a
// W3C traceparent continues that trace with a Producer span; nodes A and B
// each record one Consumer span for their fan-out, in the same trace and
// linked to the Producer span.
func TestTracePublishToDeliveryAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	recs := []*tracetest.SpanRecorder{tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()}
	var nodes []*testServer
	for i := range 2 {
		tr := telemetry.NewTracingWith(telemetry.TracingConfig{Enabled: true, FollowUser: "t1"}, recs[i])
		nodes = append(nodes, startServer(t, func(c *config.Config) {
			c.Fanout.Broker = "redis"
			c.Fanout.Redis.Shards = []string{srv.Addr()}
			c.Fanout.Redis.Prefix = "trace:"
		}, WithTracing(tr)))
	}
	a := nodes[0].mustWS(t, q("token", token(t, "t1", time.Hour)))
	readWS(t, a)
	b := nodes[1].mustSSE(t, q("token", token(t, "t1", time.Hour)), "")
	b.next(t)

	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req, _ := http.NewRequest("POST", "http://"+nodes[0].addr+"/api/publish", strings.NewReader(`{"user_id":"t1","data":{"type":"oracle_upload_completed"}}`))
	req.Header.Set("X-API-Key", testAPIKey)
	req.Header.Set("traceparent", parent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("publish: %v %v", err, resp)
	}
	resp.Body.Close()
	readWS(t, a)
	b.next(t)

	var producer sdktrace.ReadOnlySpan
	for _, s := range recs[0].Ended() {
		if s.SpanKind() == trace.SpanKindProducer {
			producer = s
		}
	}
	if producer == nil {
		t.Fatal("no producer span on node A")
	}
	if producer.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || producer.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("producer span does not continue the caller's trace: %v parent %v", producer.SpanContext(), producer.Parent())
	}
	for i, rec := range recs {
		var consumer sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			if s.SpanKind() == trace.SpanKindConsumer {
				consumer = s
			}
		}
		if consumer == nil {
			t.Fatalf("node %d: no consumer span", i)
		}
		if consumer.SpanContext().TraceID() != producer.SpanContext().TraceID() {
			t.Fatalf("node %d: consumer in another trace", i)
		}
		links := consumer.Links()
		if len(links) != 1 || links[0].SpanContext.SpanID() != producer.SpanContext().SpanID() {
			t.Fatalf("node %d: consumer not linked to the producer: %v", i, links)
		}
		attrs := map[string]any{}
		for _, kv := range consumer.Attributes() {
			attrs[string(kv.Key)] = kv.Value.AsInterface()
		}
		if attrs["herald.recipients"] != int64(1) || attrs["messaging.destination.name"] != "user:t1" {
			t.Fatalf("node %d: consumer attributes %v", i, attrs)
		}
		if len(consumer.Events()) != 1 || consumer.Events()[0].Name != "enqueue" {
			t.Fatalf("node %d: follow_user event missing: %v", i, consumer.Events())
		}
	}
}
