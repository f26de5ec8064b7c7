package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// clientDir is the npm package of the browser client.
const clientDir = "../clients/js"

// lookNode finds node and npm, or skips (fails with CI=true).
func lookNode(t *testing.T, withNPM bool) (node, npm string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		need(t, "node")
	}
	if withNPM {
		if npm, err = exec.LookPath("npm"); err != nil {
			need(t, "npm")
		}
	}
	return node, npm
}

// run runs a command in dir and returns its output, failing t on error.
func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODE_NO_WARNINGS=1", "npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// TestClientUnit runs herald.js's unit tests (clients/js/test, fake
// transports, tabs sharing through Node's BroadcastChannel) with Node's
// built-in test runner.
func TestClientUnit(t *testing.T) {
	node, _ := lookNode(t, false)
	run(t, clientDir, node, "--test", "test/herald.test.mjs")
	t.Logf("node --test clients/js/test/herald.test.mjs: ok")
}

// TestClientPackage: `npm pack` makes a tarball of clients/js that installs
// into a fresh folder, imports in Node with clear errors, and type-checks a
// sample TypeScript consumer with `tsc --noEmit` (typescript from the
// consumer's committed package-lock.json).
func TestClientPackage(t *testing.T) {
	node, npm := lookNode(t, true)
	tmp := t.TempDir()
	var packed []struct {
		Filename string `json:"filename"`
		Files    []struct {
			Path string `json:"path"`
		} `json:"files"`
	}
	out := run(t, clientDir, npm, "pack", "--json", "--pack-destination", tmp)
	if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &packed); err != nil || len(packed) != 1 {
		t.Fatalf("npm pack --json: %v\n%s", err, out)
	}
	var files []string
	for _, f := range packed[0].Files {
		files = append(files, f.Path)
	}
	slices.Sort(files)
	if want := []string{"CHANGELOG.md", "README.md", "herald.d.ts", "herald.js", "package.json"}; !slices.Equal(files, want) {
		t.Fatalf("tarball holds %v, want %v", files, want)
	}

	app := filepath.Join(tmp, "app")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"package.json", "package-lock.json", "tsconfig.json", "app.ts", "check.mjs"} {
		b, err := os.ReadFile(filepath.Join(clientDir, "consumer", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(app, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, app, npm, "ci", "--no-audit", "--no-fund")
	run(t, app, npm, "install", "--no-save", "--no-audit", "--no-fund", filepath.Join(tmp, packed[0].Filename))
	if got := run(t, app, node, "check.mjs"); !strings.HasPrefix(got, "ok @heraldrt/herald@") {
		t.Fatalf("check.mjs: %s", got)
	}
	run(t, app, filepath.Join(app, "node_modules/.bin/tsc"), "--noEmit", "-p", ".")
	t.Logf("%s installs, imports and type-checks", packed[0].Filename)
}
