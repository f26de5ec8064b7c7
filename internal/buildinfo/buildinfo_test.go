package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	stamped := resolve("v1.2.3", "abc123", "2026-01-02T03:04:05Z")
	if stamped.Version != "v1.2.3" || stamped.Commit != "abc123" || stamped.Date != "2026-01-02T03:04:05Z" {
		t.Fatalf("stamped values not kept: %+v", stamped)
	}
	if stamped.GoVersion != runtime.Version() {
		t.Fatalf("go version %q, want %q", stamped.GoVersion, runtime.Version())
	}
	for _, want := range []string{"v1.2.3", "abc123", runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(stamped.String(), want) {
			t.Errorf("%q does not mention %q", stamped.String(), want)
		}
	}
	// A test binary carries no stamp and no module version: every field
	// still has a value.
	un := resolve("", "", "")
	if un.Version != "dev" || un.Commit == "" || un.Date == "" {
		t.Fatalf("unstamped build: %+v", un)
	}
}
