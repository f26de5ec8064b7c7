package compat

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/fanout"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/heraldrt/herald/internal/testlog"
)

// pythonWith returns a Python interpreter that can import every module, or
// skips the test (fails it when CI=true). Debian's packages live in
// /usr/bin/python3's path, which a pyenv python3 on PATH does not see.
func pythonWith(t testing.TB, modules ...string) string {
	t.Helper()
	imp := "import " + strings.Join(modules, ", ")
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if err := exec.Command(py, "-c", imp).Run(); err == nil {
			return py
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("no python3 can %q (apt-get install python3-channels-redis)", imp)
	}
	t.Skipf("no python3 can %q", imp)
	return ""
}

func testLog(t testing.TB) *slog.Logger { return testlog.New() }

// collector is a memory broker whose handler records every delivered
// message of the channels it is subscribed to.
type collector struct {
	broker *fanout.MemoryBroker
	mu     sync.Mutex
	msgs   map[string][]*fanout.Message
	cond   chan struct{}
}

func newCollector(t testing.TB, channels ...string) *collector {
	c := &collector{msgs: map[string][]*fanout.Message{}, cond: make(chan struct{}, 1)}
	c.broker = fanout.NewMemory(fanout.MemoryConfig{HistorySize: 100000}, func(m *fanout.Message) {
		c.mu.Lock()
		c.msgs[m.Channel] = append(c.msgs[m.Channel], m)
		c.mu.Unlock()
		select {
		case c.cond <- struct{}{}:
		default:
		}
	})
	if err := c.broker.Subscribe(context.Background(), channels...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.broker.Close() })
	return c
}

// wait returns the first n messages of ch, failing after timeout.
func (c *collector) wait(t testing.TB, ch string, n int, timeout time.Duration) []*fanout.Message {
	t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		got := append([]*fanout.Message(nil), c.msgs[ch]...)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-c.cond:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("channel %s: got %d messages, want %d", ch, len(got), n)
		}
	}
}

func (c *collector) count(ch string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs[ch])
}

func testConfig(layer string, hosts ...*redistest.Server) Config {
	cfg := DefaultConfig()
	cfg.Enabled = true
	cfg.Layer = layer
	cfg.Hosts = nil
	for _, h := range hosts {
		cfg.Hosts = append(cfg.Hosts, "redis://"+h.Addr())
	}
	cfg.Groups = []string{"broadcast=broadcast"}
	cfg.LeaseTTL = 2 * time.Second
	return cfg
}

func startIngest(t testing.TB, cfg Config, b fanout.Broker) *Ingest {
	t.Helper()
	in, err := NewIngest(cfg, b.Publish, testLog(t))
	if err != nil {
		t.Fatalf("NewIngest: %v", err)
	}
	t.Cleanup(func() { in.Close() })
	return in
}

func syncIngest(t testing.TB, in *Ingest) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := in.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

// groupSend runs testdata/group_send.py and returns the json.dumps lines
// it printed, one per message sent.
func groupSend(t testing.TB, py, layer string, hosts []*redistest.Server, group string, txn int, extra ...string) []string {
	t.Helper()
	var urls []string
	for _, h := range hosts {
		urls = append(urls, "redis://"+h.Addr())
	}
	args := append([]string{"testdata/group_send.py", layer, strings.Join(urls, ","), group, strconv.Itoa(txn)}, extra...)
	out, err := exec.Command(py, args...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("group_send.py: %v\n%s", err, stderr)
	}
	return strings.Split(strings.TrimRight(string(out), "\n"), "\n")
}
