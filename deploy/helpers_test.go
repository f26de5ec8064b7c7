package deploy

import (
	"os"
	"os/exec"
	"testing"
)

// need returns program's path, or skips t when it is missing — and fails
// it under CI=true, where .ci/run installs it.
func need(t testing.TB, program string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (CI=true: .ci/run installs it, this test must run)", program)
	}
	t.Skipf("%s is not installed; skipping (install it, or run .ci/run)", program)
	return ""
}

// run runs a command and fails t with its output when it fails.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}
