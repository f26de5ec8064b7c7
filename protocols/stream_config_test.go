package protocols

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/confkey"
)

func TestCoalesceRules(t *testing.T) {
	if r := (StreamConfig{}).CoalesceRules(); r != nil {
		t.Errorf("no rules: %v", r)
	}
	r := StreamConfig{Coalesce: []string{"progress:transaction_id", "typing:user:id"}}.CoalesceRules()
	if len(r) != 2 || r["progress"] != "transaction_id" || r["typing"] != "user:id" {
		t.Errorf("rules %v", r)
	}
}

// The stream section's defaults are the ones Config.Defaults applies.
func TestStreamDefaults(t *testing.T) {
	got := Config{}.Defaults()
	want := DefaultStreamConfig().Config()
	want.HistoryTimeout = 5 * time.Second
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Config{}.Defaults() = %+v\nwant %+v", got, want)
	}
}

// Each problem of the stream section names its full key.
func TestStreamConfigValidate(t *testing.T) {
	if err := DefaultStreamConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		mutate func(*StreamConfig)
		key    string
	}{
		{func(s *StreamConfig) { s.WSReadTimeout = s.WSPingInterval }, "stream.ws_read_timeout"},
		{func(s *StreamConfig) { s.WSPingInterval = 0 }, "stream.ws_ping_interval"},
		{func(s *StreamConfig) { s.WSReadLimit = 100 }, "stream.ws_read_limit"},
		{func(s *StreamConfig) { s.Writers = 0 }, "stream.writers"},
		{func(s *StreamConfig) { s.MaxQueueBytes = 1 }, "stream.max_queue_bytes"},
		{func(s *StreamConfig) { s.Coalesce = []string{"bare"} }, "stream.coalesce"},
	} {
		s := DefaultStreamConfig()
		tc.mutate(&s)
		var ke *confkey.Error
		if err := s.Validate(); !errors.As(err, &ke) || ke.Key != tc.key {
			t.Errorf("got %v, want an error for %s", err, tc.key)
		}
	}
}
