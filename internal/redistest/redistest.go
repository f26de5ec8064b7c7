// Package redistest starts throwaway redis-server processes for tests: a
// standalone server on a free port with persistence off, or a small Redis
// Cluster. Every process is killed when the test ends.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
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

// Option customizes Start.
type Option func(*options)

type options struct {
	args []string
	tls  bool
}

// Args adds command-line arguments to redis-server, e.g.
// Args("--requirepass", "secret").
func Args(args ...string) Option {
	return func(o *options) { o.args = append(o.args, args...) }
}

// Server is one redis-server process owned by a test.
type Server struct {
	t    testing.TB
	port int
	args []string
	// conf, when set, is written to a config file given first on the
	// command line (sentinels need a writable one).
	conf string
	// tlsPort is the TLS listener's port (0: none).
	tlsPort int

	mu   sync.Mutex
	dir  string // working directory (RDB, AOF, log) of the running process
	proc testproc.Handle
}

// available skips t (or fails it when the CI environment variable is
// "true") when redis-server is not installed.
func available(t testing.TB, bins ...string) {
	t.Helper()
	for _, bin := range bins {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("redistest: %s not found on PATH: %v", bin, err)
			}
			t.Skipf("redistest: %s not found on PATH", bin)
		}
	}
}

// Start starts a redis-server on a free port with persistence disabled and
// its working directory in t.TempDir(), waits until it answers PING, and
// kills it when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	available(t, "redis-server")
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{t: t, args: o.args}
	if err := s.startOnFreePorts(o.tls); err != nil {
		t.Fatalf("redistest: start redis-server: %v", err)
	}
	t.Cleanup(s.Kill)
	return s
}

// startOnFreePorts starts s on a free port (and a free TLS port with tls),
// trying up to ten: a free port may be taken before redis-server binds it.
func (s *Server) startOnFreePorts(tls bool) error {
	return testproc.Retry(10, 0, func() error {
		var err error
		if s.port, err = freePort(false); err != nil {
			return err
		}
		if tls {
			if s.tlsPort, err = freePort(false); err != nil {
				return err
			}
			if s.tlsPort == s.port {
				return errors.New("the same port twice")
			}
		}
		return s.start()
	})
}

// startClusterNode starts a cluster-enabled redis-server whose cluster bus
// port (port + 10000) is free too, with cluster-node-timeout nodeTimeout
// (ms), and kills it when the test ends.
func startClusterNode(t testing.TB, nodeTimeout string) *Server {
	t.Helper()
	var srv *Server
	// The free ports may be taken before redis-server binds them.
	err := testproc.Retry(10, 0, func() error {
		port, err := freePort(true)
		if err != nil {
			return err
		}
		srv = &Server{t: t, port: port, args: []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(t.TempDir(), "nodes.conf"),
			"--cluster-node-timeout", nodeTimeout,
		}}
		return srv.start()
	})
	if err != nil {
		t.Fatalf("redistest: start cluster node: %v", err)
	}
	t.Cleanup(srv.Kill)
	return srv
}

// freePort returns a port that was free a moment ago. With bus set, port
// + 10000 (the cluster bus port) was free too.
func freePort(bus bool) (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("listen: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if !bus {
			l.Close()
			return port, nil
		}
		if port+10000 > 65535 {
			l.Close()
			continue
		}
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		l.Close()
		if err == nil {
			l2.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port found")
}

func (s *Server) start() error { return s.startIn(s.t.TempDir()) }

// startIn starts the process with dir as its working directory, loading
// whatever data files dir holds.
func (s *Server) startIn(dir string) error {
	var args []string
	if s.conf != "" {
		conf := filepath.Join(dir, "redis.conf")
		if err := os.WriteFile(conf, []byte(s.conf), 0o600); err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		args = append(args, conf)
	}
	args = append(args,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir)
	if s.tlsPort != 0 {
		args = append(args, "--tls-port", strconv.Itoa(s.tlsPort))
	}
	args = append(args, s.args...)
	cmd := exec.Command("redis-server", args...)
	logf, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := s.proc.Start(cmd, nil, func() { logf.Close() }); err != nil {
		logf.Close()
		return fmt.Errorf("exec redis-server: %w", err)
	}
	s.mu.Lock()
	s.dir = dir
	s.mu.Unlock()
	answers := func() bool {
		_, err := Do(s.Addr(), "PING")
		return err == nil
	}
	log := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
		return string(b)
	}
	return s.proc.WaitReady("redis-server on port "+strconv.Itoa(s.port), answers, 20*time.Millisecond, 10*time.Second, log)
}

// Addr returns the server's "127.0.0.1:port".
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Port returns the server's port.
func (s *Server) Port() int { return s.port }

// Pause stops the server with SIGSTOP: it keeps its connections open but
// answers nothing, as a hung or partitioned server would.
func (s *Server) Pause() { s.proc.Send(syscall.SIGSTOP) }

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() { s.proc.Send(syscall.SIGCONT) }

// Kill kills the server with SIGKILL, as a crash would, and waits for it to
// exit. It does nothing when the server is not running.
func (s *Server) Kill() { s.proc.Signal(syscall.SIGKILL, 10*time.Second) }

// Stop shuts the server down with SIGTERM and waits for it to exit.
func (s *Server) Stop() { s.proc.Signal(syscall.SIGTERM, 10*time.Second) }

// Restart kills the server and starts a new one on the same port with no
// data, as a shard restarted without persistence.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.proc.Restart(10*time.Second, s.start); err != nil {
		s.t.Fatalf("redistest: restart redis-server on port %d: %v", s.port, err)
	}
}

// RestartFromDisk kills the server (SIGKILL) and starts a new one on the
// same port and in the same directory, so it loads whatever was last
// persisted there: the last SAVE's snapshot, or the AOF when the server
// runs with Args("--appendonly", "yes"). Writes after the last save are
// lost, as in a crash.
func (s *Server) RestartFromDisk() {
	s.t.Helper()
	dir := s.Dir()
	if err := s.proc.Restart(10*time.Second, func() error { return s.startIn(dir) }); err != nil {
		s.t.Fatalf("redistest: restart redis-server on port %d from %s: %v", s.port, dir, err)
	}
}

// Dir returns the working directory of the running process (where SAVE
// writes dump.rdb).
func (s *Server) Dir() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dir
}

// Do sends one command to the Redis at addr over a fresh connection and
// returns the reply: a string for simple and bulk strings, an int64, nil, or
// a []any for arrays. Redis errors are returned as errors.
func Do(addr string, args ...string) (any, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return nil, fmt.Errorf("write to %s: %w", addr, err)
	}
	return readReply(bufio.NewReader(c))
}

func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("read reply: %w", err)
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, errors.New(line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = readReply(r); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", line)
}

// StartCluster starts a Redis Cluster of masters masters (at least 3) and no
// replicas, waits until every node reports cluster_state:ok, and returns
// the nodes' addresses. The processes are killed when the test ends.
func StartCluster(t testing.TB, masters int) []string {
	t.Helper()
	available(t, "redis-server", "redis-cli")
	if masters < 3 {
		t.Fatalf("redistest: a cluster needs at least 3 masters, not %d", masters)
	}
	var addrs []string
	for _, srv := range createCluster(t, masters, 0, "5000") {
		addrs = append(addrs, srv.Addr())
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range addrs {
		for {
			info, err := Do(a, "CLUSTER", "INFO")
			if s, ok := info.(string); err == nil && ok && strings.Contains(s, "cluster_state:ok") &&
				strings.Contains(s, "cluster_slots_ok:16384") && strings.Contains(s, "cluster_known_nodes:"+strconv.Itoa(masters)+"\r") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: cluster node %s not ok: %v %v", a, info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return addrs
}
