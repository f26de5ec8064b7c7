package edge

import (
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldrt/herald/config"
)

// Helpers of the hostile-input suites (hostile_*_test.go): the process's
// CPU time and resident memory, for the bounds each case must hold. Both
// cover the whole test process (server and client), so bounds are upper
// bounds on what Herald spent.

// cpuTime returns the user+system CPU time this process has used.
func cpuTime(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// overCPU reports whether a request costs more than bound of process CPU.
// used is the first measurement; process CPU also counts the package's
// other goroutines and the collector, so a first measurement over the
// bound is taken again up to twice with again (the same request) and the
// smallest counts: a request that really costs more pays it every time.
func overCPU(t testing.TB, used, bound time.Duration, again func()) (bool, time.Duration) {
	t.Helper()
	for i := 0; used > bound && i < 2; i++ {
		cpu := cpuTime(t)
		again()
		used = min(used, cpuTime(t)-cpu)
	}
	return used > bound, used
}

// rssBytes returns the process's resident set size (VmRSS) after a
// collection that returns free memory to the OS, so that growth measures
// what is retained, not garbage awaiting the next cycle.
func rssBytes(t testing.TB) int64 {
	t.Helper()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// startServerLogs is startServer with debug JSON logs written to logs.
func startServerLogs(t testing.TB, logs io.Writer, mutate func(*config.Config)) *testServer {
	t.Helper()
	return startServerWith(t, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), mutate)
}
