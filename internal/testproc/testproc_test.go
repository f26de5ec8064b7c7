package testproc

import (
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSignalGraceful: a process that exits on SIGTERM is waited for, and
// the done hook ran before Exited's channel closed.
func TestSignalGraceful(t *testing.T) {
	var h Handle
	hooked := make(chan struct{})
	if err := h.Start(exec.Command("sleep", "60"), nil, func() { close(hooked) }); err != nil {
		t.Skipf("no sleep command: %v", err)
	}
	if !h.Signal(syscall.SIGTERM, 10*time.Second) {
		t.Fatal("sleep was killed instead of stopping on SIGTERM")
	}
	select {
	case <-h.Exited():
	default:
		t.Fatal("Signal returned before the process exited")
	}
	select {
	case <-hooked:
	default:
		t.Fatal("done hook did not run before Exited closed")
	}
	if !h.Signal(syscall.SIGKILL, time.Second) {
		t.Fatal("Signal on an exited process reported a kill")
	}
}

// TestSignalKillsAfterGrace: a process that ignores the signal is killed
// with SIGKILL once the grace period is over.
func TestSignalKillsAfterGrace(t *testing.T) {
	var h Handle
	cmd := exec.Command("sh", "-c", `trap "" TERM; echo ready; exec sleep 60`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	drain := func() {
		b := make([]byte, 64)
		n, _ := out.Read(b)
		if n > 0 {
			close(ready)
		}
		for {
			if _, err := out.Read(b); err != nil {
				return
			}
		}
	}
	if err := h.Start(cmd, drain, nil); err != nil {
		t.Skipf("no sh command: %v", err)
	}
	select {
	case <-ready: // the trap is set
	case <-time.After(10 * time.Second):
		t.Fatal("shell did not start")
	}
	start := time.Now()
	if h.Signal(syscall.SIGTERM, 300*time.Millisecond) {
		t.Fatal("a process ignoring SIGTERM was reported as stopped")
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("killed after %s, before the grace period", d)
	}
}

// TestSignalNoProcess: the zero Handle does nothing.
func TestSignalNoProcess(t *testing.T) {
	var h Handle
	if !h.Signal(syscall.SIGKILL, time.Second) {
		t.Fatal("zero Handle reported a kill")
	}
	if err := h.Send(syscall.SIGCONT); err == nil {
		t.Fatal("Send on a zero Handle: no error")
	}
}

func TestRetry(t *testing.T) {
	calls := 0
	err := Retry(5, time.Millisecond, func() error {
		calls++
		if calls < 3 {
			return errors.New("busy")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Retry: err %v after %d calls, want nil after 3", err, calls)
	}
	calls = 0
	err = Retry(4, time.Millisecond, func() error { calls++; return errors.New("busy") })
	if err == nil || calls != 4 {
		t.Fatalf("Retry: err %v after %d calls, want the last error after 4", err, calls)
	}
}

func TestLastLines(t *testing.T) {
	if got := LastLines("a\nb\nc\n", 2); got != "b | c" {
		t.Fatalf("LastLines: %q", got)
	}
	if got := LastLines("only", 5); got != "only" {
		t.Fatalf("LastLines: %q", got)
	}
}

// TestWaitReady: nil once ready reports true; an error quoting the log
// when the process exits first; an error and a killed process when ready
// never reports true within the timeout.
func TestWaitReady(t *testing.T) {
	var h Handle
	if err := h.Start(exec.Command("sleep", "60"), nil, nil); err != nil {
		t.Skipf("no sleep command: %v", err)
	}
	defer h.Signal(syscall.SIGKILL, time.Second)
	calls := 0
	if err := h.WaitReady("sleep", func() bool { calls++; return calls == 3 }, time.Millisecond, 10*time.Second, func() string { return "" }); err != nil || calls != 3 {
		t.Fatalf("WaitReady: %v after %d polls, want nil after 3", err, calls)
	}
	err := h.WaitReady("sleep", func() bool { return false }, time.Millisecond, 100*time.Millisecond, func() string { return "a\nb" })
	if err == nil || !strings.Contains(err.Error(), "not ready within") || !strings.Contains(err.Error(), "a | b") {
		t.Fatalf("WaitReady past its timeout: %v", err)
	}
	select {
	case <-h.Exited():
	default:
		t.Fatal("WaitReady past its timeout left the process running")
	}

	var gone Handle
	if err := gone.Start(exec.Command("true"), nil, nil); err != nil {
		t.Skipf("no true command: %v", err)
	}
	err = gone.WaitReady("true", func() bool { return false }, time.Millisecond, 10*time.Second, func() string { return "bye" })
	if err == nil || !strings.Contains(err.Error(), "true exited: bye") {
		t.Fatalf("WaitReady on an exited process: %v", err)
	}
}

// TestRestart: the running process is killed and start is retried until
// it succeeds.
func TestRestart(t *testing.T) {
	var h Handle
	if err := h.Start(exec.Command("sleep", "60"), nil, nil); err != nil {
		t.Skipf("no sleep command: %v", err)
	}
	first := h.Exited()
	tries := 0
	err := h.Restart(time.Second, func() error {
		tries++
		if tries < 2 {
			return errors.New("port busy")
		}
		return h.Start(exec.Command("sleep", "60"), nil, nil)
	})
	if err != nil || tries != 2 {
		t.Fatalf("Restart: %v after %d tries, want nil after 2", err, tries)
	}
	select {
	case <-first:
	default:
		t.Fatal("the first run was not killed")
	}
	if h.Exited() == first {
		t.Fatal("no new run after Restart")
	}
	h.Signal(syscall.SIGKILL, time.Second)
}
