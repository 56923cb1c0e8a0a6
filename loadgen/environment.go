package loadgen

import (
	"os"
	"runtime"

	"github.com/posfleet/posfleet/internal/buildinfo"
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
	bi := buildinfo.Read() // the same reading as posfleet version
	e.Version, e.Commit, e.Modified = bi.Version, bi.Revision, bi.Dirty
	e.Host, _ = os.Hostname()
	return e
}
