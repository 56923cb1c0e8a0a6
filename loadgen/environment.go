package loadgen

import (
	"os"
	"runtime"
	"runtime/debug"
)

// Environment identifies the generator that produced a result and the
// machine it ran on, so that results can be compared knowingly.
type Environment struct {
	// Version is the posfleet module version ("(devel)" for a build from a
	// source tree).
	Version string `json:"version"`
	// Commit is the VCS revision the binary was built from, if known.
	Commit string `json:"commit,omitempty"`
	// Modified is true when the source tree had uncommitted changes.
	Modified bool `json:"modified,omitempty"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"go_version"`
	// Host is the machine's host name.
	Host string `json:"host"`
	// CPUs is the number of logical CPUs usable by the generator.
	CPUs int `json:"cpus"`
}

// CurrentEnvironment describes this process.
func CurrentEnvironment() Environment {
	e := Environment{GoVersion: runtime.Version(), CPUs: runtime.NumCPU()}
	e.Version, e.Commit, e.Modified = buildVersion()
	e.Host, _ = os.Hostname()
	return e
}

// buildVersion reads the main module's version and VCS stamp from the
// binary's build information.
func buildVersion() (version, commit string, modified bool) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown", "", false
	}
	version = bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	return version, commit, modified
}
