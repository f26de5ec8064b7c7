package heraldtest

// Nodes: cmd/herald is built once per test process, and each node runs it
// on a free loopback port, so a test can SIGKILL, SIGTERM and restart a
// node the way an operator or a crash would.

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/testproc"
)

// Node is one herald process owned by a test.
type Node struct {
	t       testing.TB
	bin     string
	cfgPath string
	logPath string
	addr    string
	env     []string

	proc testproc.Handle
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// Binary returns the path of a herald binary built from this module's
// cmd/herald, building it on first use (the Go build cache makes that a
// link step). The binary lives in a per-process directory of os.TempDir;
// directories of test processes that have exited are removed.
func Binary(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("heraldtest: the go command is needed to build cmd/herald: %v", err)
	}
	buildOnce.Do(func() {
		sweepStale()
		out, err := exec.Command("go", "env", "GOMOD").Output()
		root := filepath.Dir(strings.TrimSpace(string(out)))
		if err != nil || root == "." {
			buildErr = fmt.Errorf("find the module root: %v", err)
			return
		}
		dir := filepath.Join(os.TempDir(), "heraldtest-bin-"+strconv.Itoa(os.Getpid()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		bin := filepath.Join(dir, "herald")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/herald")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/herald: %v\n%s", err, out)
			return
		}
		buildBin = bin
	})
	if buildErr != nil {
		t.Fatalf("heraldtest: %v", buildErr)
	}
	return buildBin
}

// sweepStale removes binaries left by test processes that are gone.
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "heraldtest-bin-*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "heraldtest-bin-"))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue // still running (or not ours to judge)
		}
		os.RemoveAll(d)
	}
}

// StartNode runs a herald node with config, a YAML document without
// server.listen (StartNode adds it with a free loopback port), and env,
// KEY=value variables added to the test process's environment (HERALD_*
// keys override the file's). It waits until /healthz answers and kills
// the node when the test ends.
func StartNode(t testing.TB, config string, env ...string) *Node {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	n := &Node{t: t, bin: bin, cfgPath: filepath.Join(dir, "herald.yaml"), logPath: filepath.Join(dir, "herald.log"), env: env}
	// The free port may be taken before herald binds it.
	err := testproc.Retry(10, 0, func() error {
		port, err := testproc.FreePort()
		if err != nil {
			return err
		}
		n.addr = "127.0.0.1:" + strconv.Itoa(port)
		cfg := "server:\n  listen: \"" + n.addr + "\"\n" + config
		if err := os.WriteFile(n.cfgPath, []byte(cfg), 0o600); err != nil {
			return err
		}
		return n.start()
	})
	if err != nil {
		t.Fatalf("heraldtest: start herald: %v", err)
	}
	t.Cleanup(n.Kill)
	return n
}

func (n *Node) start() error {
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(n.bin, "serve", "--config", n.cfgPath)
	cmd.Env = append(os.Environ(), n.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := n.proc.Start(cmd, nil, func() { logf.Close() }); err != nil {
		logf.Close()
		return fmt.Errorf("exec herald: %w", err)
	}
	client := &http.Client{Timeout: time.Second}
	healthy := func() bool {
		resp, err := client.Get("http://" + n.addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	return n.proc.WaitReady("herald on "+n.addr, healthy, 50*time.Millisecond, 20*time.Second, n.Log)
}

// Restart starts the node again on the same port with the same config
// (after Kill or Stop).
func (n *Node) Restart() {
	n.t.Helper()
	if err := n.proc.Restart(20*time.Second, n.start); err != nil {
		n.t.Fatalf("heraldtest: restart herald on %s: %v", n.addr, err)
	}
}

// SetEnv replaces the variables StartNode added to the environment; the
// next Restart runs with them.
func (n *Node) SetEnv(env ...string) { n.env = env }

// Exited returns a channel closed when the node's current run has exited.
func (n *Node) Exited() <-chan struct{} { return n.proc.Exited() }

// Addr returns the node's "127.0.0.1:port".
func (n *Node) Addr() string { return n.addr }

// PID returns the process id of the node's current run, for a test that
// signals it by itself (a load tool, for example).
func (n *Node) PID() int { return n.proc.PID() }

// Log returns what the node wrote to stdout and stderr so far (all runs).
func (n *Node) Log() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

// Stop sends SIGTERM (a graceful shutdown) and waits for the node to exit,
// killing it after 20 s.
func (n *Node) Stop() { n.proc.Signal(syscall.SIGTERM, 20*time.Second) }

// Kill kills the node with SIGKILL, as a crash would, and waits for it to
// exit. It does nothing when the node is not running.
func (n *Node) Kill() { n.proc.Signal(syscall.SIGKILL, 20*time.Second) }
