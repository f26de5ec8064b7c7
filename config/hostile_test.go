package config_test

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

func cpu() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Hostile-input suite, config surface. TestStrictConfig: misspelled keys,
// sections and variables, unit-less durations, out-of-range values and
// hostile YAML stop the load with an error naming the key (and the closest
// known one, the value and the allowed range), within a CPU bound.
// docs/SECURITY.md lists the table.
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
		{name: "publish body limit huge", env: []string{"HERALD_API__MAX_BODY_BYTES=10000000000"},
			want: []string{"api.max_body_bytes", "between 1024 and 268435456"}},
		{name: "read limit huge", yaml: "stream:\n  ws_read_limit: 1073741824\n",
			want: []string{"stream.ws_read_limit", "between 256 and 67108864"}},
		{name: "any origin with cookie auth", yaml: "server:\n  allowed_origins: [\"*\"]\n",
			want: []string{"server.allowed_origins", "allow_any_origin_with_credentials"}},
		{name: "origin that is not one", yaml: "server:\n  allowed_origins: [\"app.example.com\"]\n",
			want: []string{"server.allowed_origins", "not an origin"}},
		{name: "negative reconnect window", env: []string{"HERALD_SERVER__RECONNECT_WINDOW=-1s"},
			want: []string{"server.reconnect_window", "between 0s and 10m"}},
		{name: "alias bomb", yaml: "a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n",
			want: []string{"config file"}},
		{name: "a section given a value", yaml: "stream: 5\n",
			want: []string{"config"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--config", writeYAML(t, tc.yaml)}
			start := cpu()
			_, err := load(t, args, append(append([]string{}, secretEnv...), tc.env...)...)
			if used := cpu() - start; used > 2*time.Second {
				t.Errorf("load cost %s of CPU (bound 2s)", used)
			}
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
