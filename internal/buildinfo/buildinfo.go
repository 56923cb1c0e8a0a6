// Package buildinfo describes the running posfleet binary: its module
// version, the VCS revision and time it was built from, and whether the
// working tree had uncommitted changes. The Go toolchain records these in
// every binary (runtime/debug.ReadBuildInfo); a release build may set the
// version explicitly with
//
//	go build -ldflags "-X github.com/posfleet/posfleet/internal/buildinfo.version=v1.2.3 \
//	  -X github.com/posfleet/posfleet/internal/buildinfo.buildTime=$(date -u +%FT%TZ)" ./cmd/posfleet
//
// Reports (server logs, load generator reports) call Read so that every
// figure names the build it came from.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version and buildTime may be set at link time (-X): a release's version
// overrides the module version, and the toolchain records no build time of
// its own (builds are reproducible).
var version, buildTime = "", ""

// Info describes a build. Fields the toolchain did not record are empty.
type Info struct {
	// Version is the module version ("v1.2.3", a pseudo-version, or
	// "(devel)" for a build from a checkout), "unknown" when the binary
	// carries no build information.
	Version string `json:"version"`
	// Revision is the VCS commit the binary was built from.
	Revision string `json:"revision,omitempty"`
	// Time is the commit time of Revision (RFC 3339), the closest to a
	// build time the toolchain records reproducibly.
	Time string `json:"time,omitempty"`
	// BuildTime is when the binary was built, only when set at link time.
	BuildTime string `json:"build_time,omitempty"`
	// Dirty reports uncommitted changes in the working tree at build time.
	Dirty bool `json:"dirty,omitempty"`
	// GoVersion is the toolchain that built the binary.
	GoVersion string `json:"go_version"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
}

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	return fromBuildInfo(bi, ok)
}

func fromBuildInfo(bi *debug.BuildInfo, ok bool) Info {
	info := Info{Version: "unknown", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if ok && bi != nil {
		if bi.Main.Version != "" {
			info.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.time":
				info.Time = s.Value
			case "vcs.modified":
				info.Dirty = s.Value == "true"
			}
		}
	}
	if version != "" {
		info.Version = version
	}
	info.BuildTime = buildTime
	return info
}

// Short is the version in one word: the release or module version, else
// "devel-<revision>" (with "-dirty" for uncommitted changes), else "devel".
func (i Info) Short() string {
	if i.Version != "" && i.Version != "(devel)" && i.Version != "unknown" {
		return i.Version
	}
	if i.Revision == "" {
		return "devel"
	}
	rev := i.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if i.Dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}

// String is the one-line description printed by "posfleet version" and
// logged at start, e.g. "posfleet v1.2.3 (revision 0123456789ab, 2026-12-01T10:00:00Z, go1.26.8, linux/amd64)".
func (i Info) String() string {
	parts := []string{}
	if i.Revision != "" {
		rev := "revision " + i.Revision
		if i.Dirty {
			rev += " with uncommitted changes"
		}
		parts = append(parts, rev)
	} else {
		parts = append(parts, "no VCS information")
	}
	if i.Time != "" {
		parts = append(parts, "committed "+i.Time)
	}
	if i.BuildTime != "" {
		parts = append(parts, "built "+i.BuildTime)
	}
	parts = append(parts, i.GoVersion, i.Platform)
	return fmt.Sprintf("posfleet %s (%s)", i.Short(), strings.Join(parts, ", "))
}
