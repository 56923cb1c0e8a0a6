// Package scripts_test checks the release script.
package scripts_test

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// The release script builds a versioned, static binary that reports its
// version, and a SHA256SUMS that matches it in sha256sum's format. One
// target only: all four take minutes.
func TestReleaseScriptBuildsOneTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a release binary")
	}
	out := t.TempDir()
	target := runtime.GOOS + "/" + runtime.GOARCH
	cmd := exec.Command("bash", "release.sh", "v9.9.9-test")
	cmd.Env = append(os.Environ(), "TARGETS="+target, "OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release.sh: %v\n%s", err, b)
	}
	name := fmt.Sprintf("posfleet-v9.9.9-test-%s-%s", runtime.GOOS, runtime.GOARCH)
	bin, err := os.ReadFile(filepath.Join(out, name))
	if err != nil {
		t.Fatal(err)
	}
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%x  %s\n", sha256.Sum256(bin), name); string(sums) != want {
		t.Errorf("SHA256SUMS = %q, want %q", sums, want)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}  \S+\n$`).Match(sums) {
		t.Errorf("SHA256SUMS line %q is not in sha256sum's format", sums)
	}
	v, err := exec.Command(filepath.Join(out, name), "version").Output()
	if err != nil || !strings.HasPrefix(string(v), "posfleet v9.9.9-test ") {
		t.Errorf("version of the release binary: %q, %v; want it to start with \"posfleet v9.9.9-test \"", v, err)
	}
	info, err := exec.Command("go", "version", "-m", filepath.Join(out, name)).Output()
	if err != nil || !strings.Contains(string(info), "-trimpath=true") || !strings.Contains(string(info), "CGO_ENABLED=0") {
		t.Errorf("build info of the release binary lacks -trimpath or CGO_ENABLED=0: %v\n%s", err, info)
	}
}
