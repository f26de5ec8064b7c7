package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// A small Chrome DevTools Protocol client: enough to open a tab, navigate,
// evaluate JavaScript, and take a screenshot. It uses the WebSocket library
// Herald already depends on, so the browser tests need no new module.

// browser is one headless Chromium process with its own profile.
type browser struct {
	t    testing.TB
	cmd  *exec.Cmd
	dir  string // profile
	conn *websocket.Conn

	wmu     sync.Mutex // serializes writes
	nextID  atomic.Int64
	mu      sync.Mutex
	pending map[int64]chan cdpReply
	console []string // console messages and exceptions, for failure reports
	closed  chan struct{}
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

type cdpMessage struct {
	ID        int64           `json:"id"`
	Method    string          `json:"method"`
	Params    json.RawMessage `json:"params"`
	SessionID string          `json:"sessionId"`
	cdpReply
}

// chromiumPath finds Chromium, or skips (fails with CI=true).
func chromiumPath(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	need(t, "chromium")
	return ""
}

// startBrowser launches headless Chromium with a fresh profile and connects
// to its DevTools endpoint. extra adds command-line flags.
func startBrowser(t testing.TB, extra ...string) *browser {
	t.Helper()
	bin := chromiumPath(t)
	// Not t.TempDir: Chromium's helper processes may still write to the
	// profile for a moment after the browser is gone.
	dir, err := os.MkdirTemp("", "herald-e2e-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-quic", "--disable-dev-shm-usage", "--user-data-dir=" + dir,
		"--remote-debugging-port=0", "--window-size=1000,1000",
	}, extra...)
	args = append(args, "about:blank")
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // kill helpers too
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	b := &browser{t: t, cmd: cmd, dir: dir, pending: make(map[int64]chan cdpReply), closed: make(chan struct{})}
	t.Cleanup(b.close)

	found := make(chan string, 1)
	var head strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if !sent {
				head.WriteString(line + "\n")
				if i := strings.Index(line, "ws://"); i >= 0 && strings.Contains(line, "DevTools listening") {
					found <- strings.TrimSpace(line[i:])
					sent = true
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	var wsURL string
	select {
	case wsURL = <-found:
	case <-time.After(30 * time.Second):
		t.Fatalf("chromium did not print its DevTools address within 30s:\n%s", head.String())
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, _, err := d.Dial(wsURL, nil)
	if err != nil {
		t.Fatalf("connect to chromium DevTools: %v", err)
	}
	conn.SetReadLimit(64 << 20) // screenshots
	b.conn = conn
	go b.readLoop()
	return b
}

func (b *browser) close() {
	if b.conn != nil {
		_ = b.conn.Close()
	}
	if b.cmd.Process != nil {
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		_ = b.cmd.Wait()
	}
	for range 20 {
		if os.RemoveAll(b.dir) == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (b *browser) readLoop() {
	defer close(b.closed)
	for {
		_, data, err := b.conn.ReadMessage()
		if err != nil {
			return
		}
		var m cdpMessage
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		if m.ID != 0 {
			b.mu.Lock()
			ch := b.pending[m.ID]
			delete(b.pending, m.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- m.cdpReply
			}
			continue
		}
		switch m.Method {
		case "Runtime.consoleAPICalled":
			var p struct {
				Type string `json:"type"`
				Args []struct {
					Value       any    `json:"value"`
					Description string `json:"description"`
				} `json:"args"`
			}
			_ = json.Unmarshal(m.Params, &p)
			var parts []string
			for _, a := range p.Args {
				if a.Value != nil {
					parts = append(parts, fmt.Sprint(a.Value))
				} else {
					parts = append(parts, a.Description)
				}
			}
			b.logf("console.%s: %s", p.Type, strings.Join(parts, " "))
		case "Runtime.exceptionThrown":
			var p struct {
				Details struct {
					Text      string `json:"text"`
					Exception struct {
						Description string `json:"description"`
					} `json:"exception"`
				} `json:"exceptionDetails"`
			}
			_ = json.Unmarshal(m.Params, &p)
			b.logf("exception: %s %s", p.Details.Text, p.Details.Exception.Description)
		}
	}
}

func (b *browser) logf(format string, args ...any) {
	b.mu.Lock()
	b.console = append(b.console, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
	b.mu.Unlock()
}

// dumpConsole logs what the page printed (called when a test fails).
func (b *browser) dumpConsole() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.console {
		b.t.Log(l)
	}
}

// call sends one command (to a page when session is set) and decodes its
// result into out.
func (b *browser) call(session, method string, params, out any) error {
	id := b.nextID.Add(1)
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	ch := make(chan cdpReply, 1)
	b.mu.Lock()
	b.pending[id] = ch
	b.mu.Unlock()
	b.wmu.Lock()
	err := b.conn.WriteJSON(msg)
	b.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, r.Error.Message, r.Error.Code)
		}
		if out != nil {
			return json.Unmarshal(r.Result, out)
		}
		return nil
	case <-b.closed:
		return fmt.Errorf("%s: browser connection closed", method)
	case <-time.After(60 * time.Second):
		return fmt.Errorf("%s: no reply within 60s", method)
	}
}

// page is one tab.
type page struct {
	b        *browser
	t        testing.TB
	session  string
	targetID string
}

// newPage opens a tab and attaches to it.
func (b *browser) newPage() *page {
	b.t.Helper()
	var tgt struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &tgt); err != nil {
		b.t.Fatal(err)
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call("", "Target.attachToTarget", map[string]any{"targetId": tgt.TargetID, "flatten": true}, &att); err != nil {
		b.t.Fatal(err)
	}
	p := &page{b: b, t: b.t, session: att.SessionID, targetID: tgt.TargetID}
	for _, m := range []string{"Page.enable", "Runtime.enable"} {
		if err := b.call(p.session, m, nil, nil); err != nil {
			b.t.Fatal(err)
		}
	}
	b.t.Cleanup(func() {
		if b.t.Failed() {
			b.dumpConsole()
		}
	})
	return p
}

// addInitScript runs js in every document the tab loads from now on,
// before the page's own scripts.
func (p *page) addInitScript(js string) {
	p.t.Helper()
	if err := p.b.call(p.session, "Page.addScriptToEvaluateOnNewDocument", map[string]any{"source": js}, nil); err != nil {
		p.t.Fatal(err)
	}
}

// viewport emulates a window width×height (CSS px); mobile for phones.
func (p *page) viewport(width, height int, mobile bool) {
	p.t.Helper()
	if err := p.b.call(p.session, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile,
	}, nil); err != nil {
		p.t.Fatal(err)
	}
}

// colorScheme emulates prefers-color-scheme ("light" or "dark").
func (p *page) colorScheme(scheme string) {
	p.t.Helper()
	if err := p.b.call(p.session, "Emulation.setEmulatedMedia", map[string]any{
		"features": []map[string]string{{"name": "prefers-color-scheme", "value": scheme}},
	}, nil); err != nil {
		p.t.Fatal(err)
	}
}

// close closes the tab as a user would (its page unloads).
func (p *page) close() {
	p.t.Helper()
	if err := p.b.call("", "Target.closeTarget", map[string]any{"targetId": p.targetID}, nil); err != nil {
		p.t.Fatal(err)
	}
}

// navigate loads url and waits for the document to finish loading.
func (p *page) navigate(url string) {
	p.t.Helper()
	var r struct {
		ErrorText string `json:"errorText"`
	}
	if err := p.b.call(p.session, "Page.navigate", map[string]any{"url": url}, &r); err != nil {
		p.t.Fatal(err)
	}
	if r.ErrorText != "" {
		p.t.Fatalf("navigate %s: %s", url, r.ErrorText)
	}
	p.waitFor(`document.readyState === "complete"`, 30*time.Second)
}

// eval evaluates expr (awaiting a returned promise) and decodes its value
// into out (which may be nil).
func (p *page) eval(expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := p.b.call(p.session, "Runtime.evaluate", map[string]any{
		"expression": expr, "awaitPromise": true, "returnByValue": true,
	}, &r)
	if err != nil {
		return err
	}
	if r.Exception != nil {
		return fmt.Errorf("evaluate: %s %s", r.Exception.Text, r.Exception.Exception.Description)
	}
	if out != nil && len(r.Result.Value) > 0 {
		return json.Unmarshal(r.Result.Value, out)
	}
	return nil
}

// mustEval is eval that fails the test on error.
func (p *page) mustEval(expr string, out any) {
	p.t.Helper()
	if err := p.eval(expr, out); err != nil {
		p.t.Fatalf("%v\nexpression: %s", err, expr)
	}
}

// waitFor polls expr until it is true.
func (p *page) waitFor(expr string, timeout time.Duration) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var lastErr error
	for {
		var ok bool
		if lastErr = p.eval("!!("+expr+")", &ok); lastErr == nil && ok {
			return
		}
		select {
		case <-ctx.Done():
			p.t.Fatalf("waited %v for %s (last error: %v)", timeout, expr, lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// screenshot saves a PNG of the page as name in the artifacts directory and
// returns its path.
func (p *page) screenshot(name string) string {
	p.t.Helper()
	var r struct {
		Data string `json:"data"`
	}
	if err := p.b.call(p.session, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &r); err != nil {
		p.t.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		p.t.Fatal(err)
	}
	dir := os.Getenv("HERALD_ARTIFACTS")
	if dir == "" {
		dir = p.t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	path := dir + "/" + name
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s (%d bytes)", path, len(png))
	return path
}
