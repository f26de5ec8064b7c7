// Package heraldtest runs Herald as a real process for tests, in two
// ways: Build and Start run a release-like binary (the release's -ldflags,
// CGO off) configured by environment and watch its log (Proc, used by
// cmd/herald and deploy tests); Binary and StartNode build cmd/herald once
// per test process and run nodes from a YAML config that a test can kill,
// stop and restart on the same port (Node, used by edge and chaos tests).
// Smoke, Publish, DialWS and friends check a node end to end.
package heraldtest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/edge/auth"
	"github.com/heraldrt/herald/internal/testproc"
)

// Test credentials used by Env.
const (
	Secret   = "heraldtest-secret-0123456789abcdef01234567"
	APIKey   = "heraldtest-api-key-0123456789"
	AdminKey = "heraldtest-admin-key-0123456789"
)

// Env is a minimal valid environment: memory broker, loopback on a free
// port, test secrets, admin API on.
func Env() []string {
	return []string{
		"HERALD_SERVER__LISTEN=127.0.0.1:0",
		"HERALD_AUTH__JWT__HMAC_SECRET=" + Secret,
		"HERALD_API__KEY=" + APIKey,
		"HERALD_ADMIN__KEY=" + AdminKey,
		"HERALD_SERVER__SHUTDOWN_TIMEOUT=5s",
		"HERALD_SERVER__RECONNECT_WINDOW=0s",
	}
}

// RepoRoot finds the module root from the test's working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// LDFlags returns the -ldflags `make release` uses for version, with the
// Makefile as the single source of them.
func LDFlags(t testing.TB, version string) string {
	t.Helper()
	out, err := exec.Command("make", "-s", "-C", RepoRoot(t), "ldflags", "VERSION="+version).Output()
	if err != nil {
		t.Fatalf("make ldflags: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// Build compiles ./cmd/herald statically (CGO off, as a release does)
// into a temporary directory and returns the binary's path.
func Build(t testing.TB, ldflags string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "herald")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", bin, "./cmd/herald")
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Proc is a running Herald process.
type Proc struct {
	Addr      string // main listener, host:port
	AdminAddr string // admin listener when admin.listen is set
	proc      testproc.Handle
	mu        sync.Mutex
	logs      bytes.Buffer
}

// Logs returns what the process logged so far.
func (p *Proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

var listenRe = regexp.MustCompile(`msg="(herald|admin API) listening" addr=(\S+)`)

// Start runs bin with args and env (added to a clean environment with PATH
// and HOME only) and waits until it listens. It is stopped with SIGTERM at
// the end of the test.
func Start(t testing.TB, bin string, env []string, args ...string) *Proc {
	t.Helper()
	p := &Proc{}
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	cmd.Dir = t.TempDir()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	wantAdmin := false
	for _, e := range env {
		if strings.HasPrefix(e, "HERALD_ADMIN__LISTEN=") && e != "HERALD_ADMIN__LISTEN=" {
			wantAdmin = true
		}
	}
	ready := make(chan struct{})
	drain := func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			if m := listenRe.FindStringSubmatch(line); m != nil {
				if m[1] == "herald" {
					p.Addr = m[2]
				} else {
					p.AdminAddr = m[2]
				}
			}
			done := p.Addr != "" && (!wantAdmin || p.AdminAddr != "")
			p.mu.Unlock()
			if done && !signalled {
				signalled = true
				close(ready)
			}
		}
	}
	if err := p.proc.Start(cmd, drain, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ready:
	case <-p.proc.Exited():
		t.Fatalf("herald exited before listening:\n%s", p.Logs())
	case <-time.After(30 * time.Second):
		p.proc.Signal(syscall.SIGKILL, 20*time.Second)
		t.Fatalf("herald did not listen within 30 s:\n%s", p.Logs())
	}
	t.Cleanup(func() { p.Stop(t) })
	return p
}

// Signal sends sig to the process.
func (p *Proc) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.proc.Send(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// Stop ends the process with SIGTERM (SIGKILL after 20 s).
func (p *Proc) Stop(t testing.TB) {
	if !p.proc.Signal(syscall.SIGTERM, 20*time.Second) {
		t.Errorf("herald did not stop within 20 s of SIGTERM:\n%s", p.Logs())
	}
}

// WaitLog waits until the process logged a line containing substr.
func (p *Proc) WaitLog(t testing.TB, substr string, timeout time.Duration) {
	t.Helper()
	p.WaitLogN(t, substr, 1, timeout)
}

// WaitLogN waits until the process logged substr at least n times.
func (p *Proc) WaitLogN(t testing.TB, substr string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Count(p.Logs(), substr) >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no log line with %q within %s:\n%s", substr, timeout, p.Logs())
}

// Get fetches url and returns the status and body.
func Get(t testing.TB, url string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Publish posts body to addr's /api/publish with the test API key.
func Publish(t testing.TB, addr, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/publish", strings.NewReader(body))
	req.Header.Set("X-API-Key", APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish %s: %d %s", body, resp.StatusCode, b)
	}
}

// Token signs a token for user with the test secret.
func Token(t testing.TB, user string) string {
	t.Helper()
	tok, err := auth.Sign(Secret, "HS256", user, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// DialWS opens a WebSocket to addr as user; the status is the handshake's
// HTTP status (101 on success).
func DialWS(t testing.TB, addr, user string) (*websocket.Conn, int, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial("ws://"+addr+"/ws/notifications/?token="+Token(t, user), nil)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, status, err
}

// ReadUntil reads WebSocket messages until one contains substr.
func ReadUntil(t testing.TB, c *websocket.Conn, substr string, timeout time.Duration) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for a message with %q: %v", substr, err)
		}
		if strings.Contains(string(b), substr) {
			return string(b)
		}
	}
}

// Smoke checks a running node end to end: /healthz answers 200, a
// WebSocket connects as user 42, and a message published to that user
// arrives on it.
func Smoke(t testing.TB, addr string) {
	t.Helper()
	if code, body := Get(t, "http://"+addr+"/healthz"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	c, status, err := DialWS(t, addr, "42")
	if err != nil {
		t.Fatalf("WebSocket connect: %v (status %d)", err, status)
	}
	marker := fmt.Sprintf("smoke-%d", time.Now().UnixNano())
	Publish(t, addr, `{"user_id":"42","data":{"type":"smoke","marker":"`+marker+`"}}`)
	ReadUntil(t, c, marker, 10*time.Second)
}
