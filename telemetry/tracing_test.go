package telemetry

import (
	"errors"
	"testing"

	"github.com/heraldrt/herald/internal/confkey"
)

// The defaults validate, and each bad value is named by its full key.
func TestTracingConfigValidate(t *testing.T) {
	if err := DefaultTracingConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		mutate func(*TracingConfig)
		key    string
	}{
		{func(c *TracingConfig) { c.Exporter = "jaeger" }, "tracing.exporter"},
		{func(c *TracingConfig) { c.SampleRatio = 1.5 }, "tracing.sample_ratio"},
		{func(c *TracingConfig) { c.SampleRatio = -0.1 }, "tracing.sample_ratio"},
	} {
		c := DefaultTracingConfig()
		tc.mutate(&c)
		var ke *confkey.Error
		if err := c.Validate(); !errors.As(err, &ke) || ke.Key != tc.key {
			t.Errorf("%+v: got %v, want an error for %s", c, err, tc.key)
		}
	}
}
