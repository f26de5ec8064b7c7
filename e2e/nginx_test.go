package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/config"
	"github.com/heraldrt/herald/internal/heraldtest"
)

// proxyReadTimeout replaces the shipped config's 120s so the test proves
// that heartbeats, not a long timeout, keep streams open.
const proxyReadTimeout = 2 * time.Second

// startNginx runs Debian's nginx with configs/nginx.conf (upstream pointed
// at heraldAddr, listening on a free loopback port, proxy_read_timeout 2s)
// in its own prefix directory, and returns its address.
func startNginx(t *testing.T, heraldAddr string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/nginx"); err2 != nil {
			need(t, "nginx")
		}
		bin = "/usr/sbin/nginx"
	}
	shipped, err := os.ReadFile("../configs/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		site := string(shipped)
		for _, r := range []struct {
			old, new string
			n        int
		}{
			{"server 127.0.0.1:8000;", "server " + heraldAddr + ";", 1},
			{"listen 80;", "listen 127.0.0.1:" + strconv.Itoa(port) + ";", 1},
			{"proxy_read_timeout 120s;", fmt.Sprintf("proxy_read_timeout %ds;", int(proxyReadTimeout.Seconds())), 2},
		} {
			if c := strings.Count(site, r.old); c < r.n {
				t.Fatalf("configs/nginx.conf: %q found %d times, want %d (the test rewrites it)", r.old, c, r.n)
			}
			site = strings.ReplaceAll(site, r.old, r.new)
		}
		dir := t.TempDir()
		for _, d := range []string{"logs", "tmp"} {
			if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		user := ""
		if os.Geteuid() == 0 {
			user = "user root;" // workers must reach the prefix directory
		}
		main := fmt.Sprintf(`%s
worker_processes 1;
error_log %[2]s/logs/error.log info;
pid %[2]s/logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log %[2]s/logs/access.log;
    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
    gzip on;
    gzip_types text/event-stream application/json;
    include %[2]s/herald.conf;
}
`, user, dir)
		if err := os.WriteFile(filepath.Join(dir, "herald.conf"), []byte(site), 0o644); err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(conf, []byte(main), 0o644); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", "stderr", "-g", "daemon off;")
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start nginx: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		addr := "127.0.0.1:" + strconv.Itoa(port)
		deadline := time.Now().Add(15 * time.Second)
		for {
			select {
			case <-exited:
				if attempt < 3 && strings.Contains(out.String(), "Address already in use") {
					goto retry
				}
				t.Fatalf("nginx exited:\n%s", out.String())
			default:
			}
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				t.Cleanup(func() {
					_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
					select {
					case <-exited:
					case <-time.After(5 * time.Second):
						_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
						<-exited
					}
					if t.Failed() {
						log, _ := os.ReadFile(filepath.Join(dir, "logs", "error.log"))
						t.Logf("nginx error.log:\n%s", log)
					}
				})
				return addr
			}
			if time.Now().After(deadline) {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				t.Fatalf("nginx did not listen on %s:\n%s", addr, out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	retry:
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// nginxHerald is a Herald with short heartbeats (SSE 500 ms, WebSocket
// pings 1 s, the shortest stream.ws_ping_interval allowed) behind nginx.
func nginxHerald(t *testing.T) (h *node, nginx string) {
	h = startHerald(t, func(c *config.Config) {
		c.Stream.SSEHeartbeat = 500 * time.Millisecond
		c.Stream.WSPingInterval = time.Second
		c.Stream.WSReadTimeout = 5 * time.Second
	}, nil)
	return h, startNginx(t, h.Addr)
}

// TestNginxSSE: through nginx an event stream delivers each event as it is
// published (not when the response ends), and the heartbeat keeps it open
// well past nginx's proxy_read_timeout.
func TestNginxSSE(t *testing.T) {
	h, ngx := nginxHerald(t)
	origin := "http://" + ngx
	s := openSSE(t, nil, origin+"/sse/notifications/?token="+heraldtest.Token(t, "42"), http.Header{"Origin": {origin}})
	if ct := s.resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") || s.resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("headers through nginx: %v", s.resp.Header)
	}
	if _, m := s.NextJSON(t, 5*time.Second); m["type"] != "connection_established" {
		t.Fatalf("first event %v", m)
	}
	check := func(i int) {
		t.Helper()
		sent := time.Now()
		publish(t, nil, origin, "42", fmt.Sprintf(`{"type":"oracle_upload_progress","step_number":%d}`, i))
		ev, m := s.NextJSON(t, 5*time.Second)
		if m["step_number"] != float64(i) || ev.ID == "" {
			t.Fatalf("event %+v %v, want step %d with an id", ev, m, i)
		}
		if lat := ev.At.Sub(sent); lat > time.Second {
			t.Fatalf("event %d took %v through nginx: buffered?", i, lat)
		}
	}
	check(1)
	check(2)
	time.Sleep(3 * proxyReadTimeout) // only heartbeats flow now
	check(3)
	_ = h
}

// TestNginxWebSocket: through nginx the upgrade works for a browser-like
// client (Origin = nginx's address, so Host must keep the port), messages
// arrive as published, and Herald's pings keep the connection open past
// proxy_read_timeout.
func TestNginxWebSocket(t *testing.T) {
	_, ngx := nginxHerald(t)
	origin := "http://" + ngx
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial("ws://"+ngx+"/ws/notifications/?format=envelope&token="+heraldtest.Token(t, "42"), http.Header{"Origin": {origin}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("WebSocket through nginx: %v (HTTP %d)", err, status)
	}
	defer c.Close()
	type msg struct {
		m  map[string]any
		at time.Time
	}
	msgs := make(chan msg, 16)
	errc := make(chan error, 1)
	go func() { // reading also answers Herald's pings
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				errc <- err
				return
			}
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			msgs <- msg{m, time.Now()}
		}
	}()
	next := func() msg {
		t.Helper()
		select {
		case m := <-msgs:
			return m
		case err := <-errc:
			t.Fatalf("WebSocket ended: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("no message within 5s")
		}
		return msg{}
	}
	if m := next(); m.m["type"] != "connection_established" {
		t.Fatalf("first message %v", m.m)
	}
	check := func(i int) {
		t.Helper()
		sent := time.Now()
		publish(t, nil, origin, "42", fmt.Sprintf(`{"type":"oracle_upload_progress","step_number":%d}`, i))
		m := next()
		data, _ := m.m["data"].(map[string]any)
		if data["step_number"] != float64(i) || m.m["cursor"] == nil {
			t.Fatalf("message %v, want step %d in an envelope", m.m, i)
		}
		if lat := m.at.Sub(sent); lat > time.Second {
			t.Fatalf("message %d took %v through nginx", i, lat)
		}
	}
	check(1)
	time.Sleep(3 * proxyReadTimeout)
	check(2)
}

// TestNginxBrowser: a real browser loads the page through nginx and the
// README's plain WebSocket and EventSource snippets stream through it.
func TestNginxBrowser(t *testing.T) {
	_, ngx := nginxHerald(t)
	b := startBrowser(t)
	p := b.newPage()
	p.navigate("http://" + ngx + "/")
	tok := heraldtest.Token(t, "42")
	p.mustEval(`
window.TOKEN = `+"`"+tok+"`"+`;
window.viaWS = []; window.viaSSE = [];
const ws = new WebSocket('ws://`+ngx+`/ws/notifications/?token=' + TOKEN);
ws.onmessage = (event) => viaWS.push(JSON.parse(event.data).type);
const es = new EventSource('/sse/notifications/?token=' + TOKEN);
es.onmessage = (event) => viaSSE.push(JSON.parse(event.data).type);
`, nil)
	p.waitFor(`viaWS[0] === "connection_established" && viaSSE[0] === "connection_established"`, 15*time.Second)
	time.Sleep(3 * proxyReadTimeout)
	for _, m := range workflow(603) {
		publish(t, nil, "http://"+ngx, "42", m)
	}
	p.waitFor(`viaWS.length === 8 && viaSSE.length === 8 && viaWS[7] === "oracle_upload_completed" && viaSSE[7] === "oracle_upload_completed"`, 15*time.Second)
}
