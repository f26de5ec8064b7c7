package config_test

import (
	"strings"
	"testing"
)

// TestStrictConfig: misspelled keys, sections and variables, unit-less
// durations and out-of-range values stop the load with an error naming the
// key (and the closest known one, the value and the allowed range).
func TestStrictConfig(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		env  []string
		want []string // substrings of the error
	}{
		{name: "unit-less duration in YAML", yaml: "stream:\n  ws_ping_interval: 25\n",
			want: []string{"stream.ws_ping_interval", "25 has no unit"}},
		{name: "unit-less duration in env", env: []string{"HERALD_STREAM__WS_PING_INTERVAL=25"},
			want: []string{"stream.ws_ping_interval", "HERALD_STREAM__WS_PING_INTERVAL", "not a duration"}},
		{name: "float duration in YAML", yaml: "server:\n  handshake_timeout: 2.5\n",
			want: []string{"server.handshake_timeout", "has no unit"}},
		{name: "misspelled section", yaml: "straem:\n  ws_ping_interval: 25s\n",
			want: []string{"unknown key straem.ws_ping_interval", "did you mean stream.ws_ping_interval?"}},
		{name: "misspelled key", yaml: "stream:\n  ws_ping_intervall: 25s\n",
			want: []string{"unknown key stream.ws_ping_intervall", "did you mean stream.ws_ping_interval?"}},
		{name: "key below a leaf", yaml: "server:\n  listen:\n    port: 80\n",
			want: []string{"unknown key server.listen.port"}},
		{name: "unknown top-level key, no near match", yaml: "zzzzzzzzzzzzzzzzzzzz: 1\n",
			want: []string{"unknown key zzzzzzzzzzzzzzzzzzzz"}},
		{name: "single underscore variable", env: []string{"HERALD_SERVER_LISTEN=127.0.0.1:1"},
			want: []string{"unknown variable HERALD_SERVER_LISTEN", "did you mean HERALD_SERVER__LISTEN?"}},
		{name: "misspelled variable", env: []string{"HERALD_STREAM__WS_PING_INTERVALL=25s"},
			want: []string{"unknown variable HERALD_STREAM__WS_PING_INTERVALL", "HERALD_STREAM__WS_PING_INTERVAL?"}},
		{name: "section as a variable", env: []string{"HERALD_SERVER=x"},
			want: []string{"unknown variable HERALD_SERVER"}},
		{name: "ping interval under 1s", yaml: "stream:\n  ws_ping_interval: 25ms\n",
			want: []string{"stream.ws_ping_interval", "between 1s and 1h", "got 25ms"}},
		{name: "write timeout under 100ms", env: []string{"HERALD_STREAM__WRITE_TIMEOUT=10ms"},
			want: []string{"stream.write_timeout", "between 100ms and 10m", "got 10ms"}},
		{name: "sse heartbeat too short", yaml: "stream:\n  sse_heartbeat: 1ms\n",
			want: []string{"stream.sse_heartbeat", "between 100ms and 1h"}},
		{name: "idle timeout tiny", yaml: "limits:\n  idle_timeout: 1ms\n",
			want: []string{"limits.idle_timeout", "or 0 to turn it off"}},
		{name: "queue bytes huge", yaml: "stream:\n  max_queue_bytes: 99999999999\n",
			want: []string{"stream.max_queue_bytes", "between 1024 and 1073741824"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--config", writeYAML(t, tc.yaml)}
			_, err := load(t, args, append(append([]string{}, secretEnv...), tc.env...)...)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	// What is fine stays fine: 0 without a unit, documented non-config
	// variables, unit-carrying durations.
	cfg := mustLoad(t, []string{"--config", writeYAML(t, "limits:\n  idle_timeout: 0\nstream:\n  ws_ping_interval: 2s\n")},
		append(append([]string{}, secretEnv...), "HERALD_TEST_LOG=1", "HERALD_LIMITS__MAX_LIFETIME=0")...)
	if cfg.Stream.WSPingInterval.String() != "2s" || cfg.Limits.IdleTimeout != 0 {
		t.Fatalf("loaded %v %v", cfg.Stream.WSPingInterval, cfg.Limits.IdleTimeout)
	}
}
