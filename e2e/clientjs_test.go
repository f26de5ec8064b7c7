package e2e

import (
	"os"
	"os/exec"
	"testing"
)

// TestClientUnit runs herald.js's unit tests (web/herald.test.mjs, fake
// transports) with Node's built-in test runner.
func TestClientUnit(t *testing.T) {
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		need(t, "node")
	}
	cmd := exec.Command(nodeBin, "--test", "../web/herald.test.mjs")
	cmd.Env = append(os.Environ(), "NODE_NO_WARNINGS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test web/herald.test.mjs: %v\n%s", err, out)
	}
	t.Logf("node --test web/herald.test.mjs: ok")
}
