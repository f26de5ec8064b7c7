package main

import (
	"encoding/json"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/buildinfo"
	"github.com/heraldrt/herald/internal/heraldtest"
)

// TestVersionStampedBinary builds Herald with the release's -ldflags and
// checks that the stamped values come out of `herald version`,
// `--version --json`, the herald_build_info metric, and that `herald
// health` tells a live node from a dead one.
func TestVersionStampedBinary(t *testing.T) {
	const version = "v9.8.7-test"
	bin := heraldtest.Build(t, heraldtest.LDFlags(t, version))

	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("herald version: %v", err)
	}
	line := string(out)
	if !strings.HasPrefix(line, "herald "+version+" ") || !strings.Contains(line, runtime.Version()) {
		t.Fatalf("herald version printed %q", line)
	}
	out, err = exec.Command(bin, "--version", "--json").Output()
	if err != nil {
		t.Fatalf("herald --version --json: %v", err)
	}
	var info buildinfo.Info
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	// The Makefile stamps `git rev-parse HEAD` (or "unknown" outside a
	// git checkout).
	wantCommit := "unknown"
	if out, err := exec.Command("git", "-C", heraldtest.RepoRoot(t), "rev-parse", "HEAD").Output(); err == nil {
		wantCommit = strings.TrimSpace(string(out))
	}
	if info.Version != version || info.Commit != wantCommit || info.Date == "" {
		t.Fatalf("stamped info %+v, want version %s commit %s", info, version, wantCommit)
	}
	if out, err := exec.Command(bin, "version", "--bogus").CombinedOutput(); err == nil {
		t.Fatalf("version --bogus succeeded: %s", out)
	}

	p := heraldtest.Start(t, bin, heraldtest.Env())
	_, metrics := heraldtest.Get(t, "http://"+p.Addr+"/metrics")
	want := `herald_build_info{commit="` + info.Commit + `",goversion="` + runtime.Version() + `",version="` + version + `"} 1`
	if !strings.Contains(metrics, want) {
		t.Fatalf("/metrics lacks %s", want)
	}
	if !strings.Contains(p.Logs(), "version="+version) {
		t.Fatalf("start-up log does not name the version:\n%s", p.Logs())
	}

	if out, err := exec.Command(bin, "health", "--url", "http://"+p.Addr+"/healthz").CombinedOutput(); err != nil {
		t.Fatalf("health against a live node: %v\n%s", err, out)
	}
	// Without --url, health reads the config like serve does: the port of
	// server.listen on loopback.
	cmd := exec.Command(bin, "health")
	cmd.Env = append(heraldtest.Env(), "HERALD_SERVER__LISTEN="+p.Addr)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("health from config: %v\n%s", err, out)
	}
	p.Stop(t)
	out, err = exec.Command(bin, "health", "--url", "http://"+p.Addr+"/healthz", "--timeout", "2s").CombinedOutput()
	if err == nil {
		t.Fatalf("health against a stopped node succeeded: %s", out)
	}
	if !strings.Contains(string(out), "health:") {
		t.Fatalf("health failure does not say why: %s", out)
	}
}

// TestAdminListenConsole runs the binary with admin.listen: the console
// page and its status endpoint are served there (not on the main
// listener), the status names this build.
func TestAdminListenConsole(t *testing.T) {
	const version = "v9.8.7-admin"
	bin := heraldtest.Build(t, heraldtest.LDFlags(t, version))
	p := heraldtest.Start(t, bin, append(heraldtest.Env(), "HERALD_ADMIN__LISTEN=127.0.0.1:0"))
	code, page := heraldtest.Get(t, "http://"+p.AdminAddr+"/admin/")
	if code != 200 || !strings.Contains(page, "Herald admin") || strings.Contains(page, heraldtest.AdminKey) {
		t.Fatalf("console page on admin.listen: %d", code)
	}
	if code, _ := heraldtest.Get(t, "http://"+p.Addr+"/admin/"); code != 404 {
		t.Fatalf("console on the main listener with admin.listen set: %d, want 404", code)
	}
	if code, _ := heraldtest.Get(t, "http://"+p.AdminAddr+"/admin/status"); code != 401 {
		t.Fatalf("status without the key: %d, want 401", code)
	}
	code, body := heraldtest.Get(t, "http://"+p.AdminAddr+"/admin/status", "X-Admin-Key", heraldtest.AdminKey)
	var st struct {
		Nodes []struct {
			Version string `json:"version"`
			Healthy bool   `json:"healthy"`
			Broker  string `json:"broker"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != 200 || len(st.Nodes) != 1 ||
		st.Nodes[0].Version != version || !st.Nodes[0].Healthy || st.Nodes[0].Broker != "memory" {
		t.Fatalf("status: %d %s", code, body)
	}
}
