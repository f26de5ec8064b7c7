package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/heraldtest"
)

// TestContainerImage builds the image with `make image` (FROM scratch, so
// nothing is pulled), checks its configuration with `podman image
// inspect`, then takes the binary and config out of the image and runs
// them on loopback: /healthz, a WebSocket connect, a publish, and the
// image's own HEALTHCHECK command. Containers cannot run on every machine
// (crun refuses under hybrid cgroups), so running the image itself is
// tried and only logged when the runtime refuses.
func TestContainerImage(t *testing.T) {
	podman := need(t, "podman")
	const version = "v9.8.7-image"
	tag := fmt.Sprintf("localhost/herald-test:%d", time.Now().UnixNano())
	ctxDir := t.TempDir()
	root := heraldtest.RepoRoot(t)

	build := exec.Command("make", "-s", "-C", root, "image", "CONTAINER="+podman, "IMAGE_TAG="+tag,
		"IMAGE_CONTEXT="+ctxDir, "VERSION="+version)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(podman, "rmi", "-f", tag).Run() })

	var inspect []struct {
		Config struct {
			User         string              `json:"User"`
			ExposedPorts map[string]struct{} `json:"ExposedPorts"`
			Entrypoint   []string            `json:"Entrypoint"`
			Cmd          []string            `json:"Cmd"`
			Labels       map[string]string   `json:"Labels"`
		} `json:"Config"`
		HealthCheck *struct {
			Test []string `json:"Test"`
		} `json:"HealthCheck"`
		Architecture string `json:"Architecture"`
	}
	if err := json.Unmarshal([]byte(run(t, podman, "image", "inspect", tag)), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("podman image inspect: %v (%d images)", err, len(inspect))
	}
	img := inspect[0]
	if u := img.Config.User; u == "" || u == "0" || strings.HasPrefix(u, "0:") || u == "root" {
		t.Errorf("image runs as %q, want a non-root user", u)
	}
	if _, ok := img.Config.ExposedPorts["8000/tcp"]; !ok {
		t.Errorf("exposed ports %v lack 8000/tcp", img.Config.ExposedPorts)
	}
	if !slices.Equal(img.Config.Entrypoint, []string{"/usr/local/bin/herald"}) {
		t.Errorf("entrypoint %v", img.Config.Entrypoint)
	}
	if !slices.Equal(img.Config.Cmd, []string{"serve", "--config", "/etc/herald/herald.yaml"}) {
		t.Errorf("cmd %v", img.Config.Cmd)
	}
	if v := img.Config.Labels["org.opencontainers.image.version"]; v != version {
		t.Errorf("version label %q, want %q", v, version)
	}
	if img.Config.Labels["org.opencontainers.image.revision"] == "" || img.Config.Labels["org.opencontainers.image.licenses"] != "Apache-2.0" {
		t.Errorf("labels %v", img.Config.Labels)
	}
	if img.HealthCheck == nil || len(img.HealthCheck.Test) < 3 || img.HealthCheck.Test[0] != "CMD" ||
		img.HealthCheck.Test[1] != "/usr/local/bin/herald" || img.HealthCheck.Test[2] != "health" {
		t.Fatalf("healthcheck %+v, want CMD /usr/local/bin/herald health ...", img.HealthCheck)
	}

	// Take the binary and the default config out of the image.
	id := strings.TrimSpace(run(t, podman, "create", tag))
	t.Cleanup(func() { _ = exec.Command(podman, "rm", "-f", id).Run() })
	out := t.TempDir()
	bin := filepath.Join(out, "herald")
	cfg := filepath.Join(out, "herald.yaml")
	run(t, podman, "cp", id+":/usr/local/bin/herald", bin)
	run(t, podman, "cp", id+":/etc/herald/herald.yaml", cfg)

	v, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(v), "herald "+version+" ") {
		t.Fatalf("extracted binary: version %q, %v", v, err)
	}
	// The image's CMD with its own config, configured by environment like
	// the container would be.
	args := append([]string(nil), img.Config.Cmd...)
	args[len(args)-1] = cfg
	p := heraldtest.Start(t, bin, heraldtest.Env(), args...)
	heraldtest.Smoke(t, p.Addr)

	// The image's HEALTHCHECK command, aimed at the running node.
	hc := append([]string(nil), img.HealthCheck.Test[2:]...)
	for i, a := range hc {
		if a == "/etc/herald/herald.yaml" {
			hc[i] = cfg
		}
	}
	cmd := exec.Command(bin, hc...)
	cmd.Env = append(heraldtest.Env(), "HERALD_SERVER__LISTEN="+p.Addr)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("HEALTHCHECK %v: %v\n%s", hc, err, out)
	}

	// Where the runtime works, run the image itself.
	runOut, err := exec.Command(podman, "run", "--rm", "--network", "none", tag, "version").CombinedOutput()
	switch {
	case err == nil && !strings.Contains(string(runOut), version):
		t.Errorf("podman run %s version printed %q", tag, runOut)
	case err != nil:
		t.Logf("the container runtime cannot run containers here (checked the extracted binary instead): %v: %s",
			err, strings.TrimSpace(string(runOut)))
	}
	_ = os.Remove(bin)
}
