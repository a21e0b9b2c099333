// Package buildinfo names this build: the module version when built from a
// tagged module, else the VCS revision Go stamped into the binary.
package buildinfo

import (
	"runtime/debug"
	"strings"
)

// Version is this build's version, for example "v0.3.0", "devel 1a2b3c4d5e6f"
// or "devel 1a2b3c4d5e6f (modified)"; "devel" when Go recorded nothing
// (go run, go test).
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = " (modified)"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	return strings.TrimSpace("devel " + rev[:min(12, len(rev))] + dirty)
}
