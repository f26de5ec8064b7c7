// Package nodetest runs real Herald node processes for tests: cmd/herald
// is built once per test process, and each node runs it with a YAML config
// on a free loopback port, so a test can SIGKILL, SIGTERM and restart a
// node the way an operator or a crash would.
package nodetest

import (
	"errors"
	"fmt"
	"net"
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
)

// Node is one herald process owned by a test.
type Node struct {
	t       testing.TB
	bin     string
	cfgPath string
	logPath string
	addr    string

	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan struct{}
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
		t.Fatalf("nodetest: the go command is needed to build cmd/herald: %v", err)
	}
	buildOnce.Do(func() {
		sweepStale()
		out, err := exec.Command("go", "env", "GOMOD").Output()
		root := filepath.Dir(strings.TrimSpace(string(out)))
		if err != nil || root == "." {
			buildErr = fmt.Errorf("find the module root: %v", err)
			return
		}
		dir := filepath.Join(os.TempDir(), "herald-nodetest-"+strconv.Itoa(os.Getpid()))
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
		t.Fatalf("nodetest: %v", buildErr)
	}
	return buildBin
}

// sweepStale removes binaries left by test processes that are gone.
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "herald-nodetest-*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "herald-nodetest-"))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue // still running (or not ours to judge)
		}
		os.RemoveAll(d)
	}
}

// Start runs a herald node with config, a YAML document without
// server.listen (Start adds it with a free loopback port), waits until
// /healthz answers, and kills the node when the test ends.
func Start(t testing.TB, config string) *Node {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	n := &Node{t: t, bin: bin, cfgPath: filepath.Join(dir, "herald.yaml"), logPath: filepath.Join(dir, "herald.log")}
	var err error
	for range 10 { // the free port may be taken before herald binds it
		port, perr := freePort()
		if perr != nil {
			err = perr
			continue
		}
		n.addr = "127.0.0.1:" + strconv.Itoa(port)
		cfg := "server:\n  listen: \"" + n.addr + "\"\n" + config
		if err = os.WriteFile(n.cfgPath, []byte(cfg), 0o600); err != nil {
			break
		}
		if err = n.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("nodetest: start herald: %v", err)
	}
	t.Cleanup(n.Kill)
	return n
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (n *Node) start() error {
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(n.bin, "serve", "--config", n.cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("exec herald: %w", err)
	}
	exit := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(exit)
	}()
	n.mu.Lock()
	n.cmd, n.exit = cmd, exit
	n.mu.Unlock()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get("http://" + n.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exit:
			return fmt.Errorf("herald on %s exited: %s", n.addr, lastLines(n.Log(), 5))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			n.Kill()
			return fmt.Errorf("herald on %s not healthy within 20s: %s", n.addr, lastLines(n.Log(), 5))
		}
	}
}

func lastLines(s string, k int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-k):], " | ")
}

// Addr returns the node's "127.0.0.1:port".
func (n *Node) Addr() string { return n.addr }

// Log returns what the node wrote to stdout and stderr so far (all runs).
func (n *Node) Log() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

// Kill kills the node with SIGKILL, as a crash would, and waits for it to
// exit. It does nothing when the node is not running.
func (n *Node) Kill() { n.signal(syscall.SIGKILL) }

// Stop sends SIGTERM (a graceful shutdown) and waits for the node to exit,
// killing it after 20 s.
func (n *Node) Stop() { n.signal(syscall.SIGTERM) }

func (n *Node) signal(sig os.Signal) {
	n.mu.Lock()
	cmd, exit := n.cmd, n.exit
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exit:
		return
	default:
	}
	cmd.Process.Signal(sig)
	select {
	case <-exit:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-exit
	}
}

// Restart starts the node again on the same port with the same config
// (after Kill or Stop).
func (n *Node) Restart() {
	n.t.Helper()
	n.Kill()
	var err error
	for range 50 { // the port may linger briefly
		if err = n.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.t.Fatalf("nodetest: restart herald on %s: %v", n.addr, err)
}
