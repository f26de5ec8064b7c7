// Package testproc holds what every test helper that runs a real process
// shares: a handle that signals a process and waits for it to exit
// (killing it after a grace period), retries for restarting on the same
// port, free loopback ports and log tails. It depends on the standard
// library only, so any test helper package can use it.
package testproc

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Handle is one run of a process at a time: Start replaces the previous
// run (after it exited). The zero Handle has no process; its methods then
// do nothing.
type Handle struct {
	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan struct{}
}

// Start starts cmd and waits for it in a goroutine: drain (when set) runs
// first (e.g. reading a StderrPipe to its end, which must finish before
// cmd.Wait), then cmd.Wait, then done (when set, e.g. closing a log file);
// after that Exited's channel is closed.
func (h *Handle) Start(cmd *exec.Cmd, drain, done func()) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	exit := make(chan struct{})
	go func() {
		if drain != nil {
			drain()
		}
		_ = cmd.Wait()
		if done != nil {
			done()
		}
		close(exit)
	}()
	h.mu.Lock()
	h.cmd, h.exit = cmd, exit
	h.mu.Unlock()
	return nil
}

// Exited returns a channel closed when the current run has exited (nil,
// blocking for ever, before the first Start).
func (h *Handle) Exited() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.exit
}

// PID returns the process id of the current run (0 before the first
// Start).
func (h *Handle) PID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil || h.cmd.Process == nil {
		return 0
	}
	return h.cmd.Process.Pid
}

// Send sends sig to the running process without waiting (SIGSTOP,
// SIGCONT, SIGHUP...).
func (h *Handle) Send(sig os.Signal) error {
	h.mu.Lock()
	cmd := h.cmd
	h.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("no process started")
	}
	return cmd.Process.Signal(sig)
}

// Signal sends sig and waits for the process to exit, killing it with
// SIGKILL when it has not exited within grace. It does nothing when no
// process runs. It reports false when the process had to be killed.
func (h *Handle) Signal(sig os.Signal, grace time.Duration) bool {
	h.mu.Lock()
	cmd, exit := h.cmd, h.exit
	h.mu.Unlock()
	if cmd == nil {
		return true
	}
	select {
	case <-exit:
		return true
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exit:
		return true
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-exit
		return false
	}
}

// WaitReady polls ready every poll until it reports true and then returns
// nil. It returns an error naming what (e.g. "redis-server on port 7000")
// and quoting the last lines of log() when the process exits first, or
// when ready has not reported true within timeout; then it kills the
// process first.
func (h *Handle) WaitReady(what string, ready func() bool, poll, timeout time.Duration, log func() string) error {
	exit := h.Exited()
	deadline := time.Now().Add(timeout)
	for {
		if ready() {
			return nil
		}
		select {
		case <-exit:
			return fmt.Errorf("%s exited: %s", what, LastLines(log(), 5))
		case <-time.After(poll):
		}
		if time.Now().After(deadline) {
			h.Signal(syscall.SIGKILL, timeout)
			return fmt.Errorf("%s not ready within %s: %s", what, timeout, LastLines(log(), 5))
		}
	}
}

// Restart kills the running process (SIGKILL, as a crash would, waiting
// up to grace for it to exit) and calls start until it succeeds, up to 50
// times 100 ms apart: a server restarted on the port it had may find the
// port lingering for a moment.
func (h *Handle) Restart(grace time.Duration, start func() error) error {
	h.Signal(syscall.SIGKILL, grace)
	return Retry(50, 100*time.Millisecond, start)
}

// Retry calls fn up to attempts times, pausing between failed calls, and
// returns the last error (nil once fn succeeds). Restarting a server on
// the port it had needs it: the port may linger for a moment.
func Retry(attempts int, pause time.Duration, fn func() error) error {
	var err error
	for i := range attempts {
		if err = fn(); err == nil {
			return nil
		}
		if i < attempts-1 {
			time.Sleep(pause)
		}
	}
	return err
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// LastLines returns the last n lines of s joined with " | ", for error
// messages quoting a process's log.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}
