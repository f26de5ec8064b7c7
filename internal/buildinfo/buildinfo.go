// Package buildinfo reports which build of Herald is running: the version,
// commit and date stamped by the release build (-ldflags -X, see the
// Makefile's release target), falling back to what the Go toolchain records
// (module version for `go install ...@v1.2.3`, VCS revision and time for a
// build inside a git checkout).
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Stamped by the linker: go build -ldflags "-X
// github.com/heraldrt/herald/internal/buildinfo.version=v1.2.3 ...". They
// are the only package-level variables because -X can set nothing else.
var (
	version = ""
	commit  = ""
	date    = ""
)

// Info describes one build.
type Info struct {
	// Version is the release version ("v0.3.0"), or "dev" for an unstamped build.
	Version string `json:"version"`
	// Commit is the git commit the binary was built from ("unknown" if not known).
	Commit string `json:"commit"`
	// Date is the commit or build time, RFC 3339 ("unknown" if not known).
	Date string `json:"date"`
	// GoVersion is the toolchain that built the binary.
	GoVersion string `json:"go_version"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
}

// Get returns the running binary's build information.
func Get() Info {
	return resolve(version, commit, date)
}

func resolve(v, c, d string) Info {
	info := Info{Version: v, Commit: c, Date: d, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Commit == "" {
					info.Commit = s.Value
				}
			case "vcs.time":
				if info.Date == "" {
					info.Date = s.Value
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && c == "" && info.Commit != "" {
			info.Commit += "-dirty"
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	if info.Date == "" {
		info.Date = "unknown"
	}
	return info
}

// String is the one line `herald version` prints.
func (i Info) String() string {
	return fmt.Sprintf("herald %s (commit %s, built %s, %s, %s)", i.Version, i.Commit, i.Date, i.GoVersion, i.Platform)
}
