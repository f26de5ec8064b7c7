package telemetry

import (
	"context"
	"fmt"
	"os"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/heraldrt/herald/internal/confkey"
)

// TracingConfig configures OpenTelemetry tracing (config key "tracing").
type TracingConfig struct {
	// Enabled turns tracing on (off by default).
	Enabled bool `koanf:"enabled"`
	// Exporter is otlp-grpc, otlp-http or stdout.
	Exporter string `koanf:"exporter"`
	// Endpoint is the collector's host:port for the OTLP exporters.
	Endpoint string `koanf:"endpoint"`
	// Insecure sends OTLP without TLS (a local collector).
	Insecure bool `koanf:"insecure"`
	// SampleRatio is the fraction of new traces sampled (0..1); a publish
	// that continues a sampled traceparent is always sampled.
	SampleRatio float64 `koanf:"sample_ratio"`
	// ServiceName names this service in traces.
	ServiceName string `koanf:"service_name"`
	// FollowUser, when set, adds a per-connection event to delivery spans
	// for this user id, to debug one user's complaint.
	FollowUser string `koanf:"follow_user"`
}

// DefaultTracingConfig returns the tracing defaults: off, and when turned
// on, OTLP over gRPC to a local collector, every trace sampled.
func DefaultTracingConfig() TracingConfig {
	return TracingConfig{Exporter: "otlp-grpc", Endpoint: "127.0.0.1:4317", Insecure: true, SampleRatio: 1, ServiceName: "herald"}
}

// Validate checks the section (key "tracing") and returns every problem
// as a *confkey.Error naming its key.
func (c TracingConfig) Validate() error {
	var l confkey.List
	switch c.Exporter {
	case "otlp-grpc", "otlp-http", "stdout":
	default:
		l.Add("tracing.exporter", "must be otlp-grpc, otlp-http or stdout, got %q", c.Exporter)
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		l.Add("tracing.sample_ratio", "must be between 0 and 1, got %g", c.SampleRatio)
	}
	return l.Err()
}

// Tracing is a node's tracer with its W3C propagator.
type Tracing struct {
	Tracer     trace.Tracer
	Propagator propagation.TextMapPropagator
	FollowUser string
	shutdown   func(context.Context) error
}

// NewTracing builds the tracer for cfg. With tracing disabled it returns
// nil: callers check for nil and skip all tracing work.
func NewTracing(ctx context.Context, cfg TracingConfig) (*Tracing, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	var exp sdktrace.SpanExporter
	var err error
	switch cfg.Exporter {
	case "otlp-grpc", "otlp", "":
		opts := []otlptracegrpc.Option{}
		if cfg.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpoint(cfg.Endpoint))
		}
		if cfg.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	case "otlp-http":
		opts := []otlptracehttp.Option{}
		if cfg.Endpoint != "" {
			opts = append(opts, otlptracehttp.WithEndpoint(cfg.Endpoint))
		}
		if cfg.Insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	case "stdout":
		exp, err = stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
	default:
		return nil, fmt.Errorf("tracing.exporter: unknown exporter %q (otlp-grpc, otlp-http or stdout)", cfg.Exporter)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing exporter %s: %w", cfg.Exporter, err)
	}
	return NewTracingWith(cfg, sdktrace.NewBatchSpanProcessor(exp)), nil
}

// NewTracingWith builds a tracer that hands spans to sp (tests pass an
// in-memory recorder).
func NewTracingWith(cfg TracingConfig, sp sdktrace.SpanProcessor) *Tracing {
	name := cfg.ServiceName
	if name == "" {
		name = "herald"
	}
	ratio := cfg.SampleRatio
	if ratio <= 0 || ratio > 1 {
		ratio = 1
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(sp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(name))),
	)
	return &Tracing{
		Tracer:     tp.Tracer("github.com/heraldrt/herald"),
		Propagator: propagation.TraceContext{},
		FollowUser: cfg.FollowUser,
		shutdown:   tp.Shutdown,
	}
}

// Shutdown flushes and stops the tracer.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.shutdown(ctx)
}
