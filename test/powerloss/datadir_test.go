package powerloss_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/posfleet/posfleet/test/internal/workload"
	"github.com/posfleet/posfleet/test/powerloss/cutfs"
)

// A data directory that serve creates survives a power cut, even on a
// file system that keeps a new name only once its directory is fsynced.
func TestNewDataDirSurvivesPowerLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the real binary and mounts a FUSE file system")
	}
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	fs := cutfs.MountForTest(t, mnt, filepath.Join(dir, "backing"), cutfs.POSIX)
	dataDir := filepath.Join(mnt, "a", "data")
	p := workload.Start(t, workload.BuildBinary(t), dataDir, workload.TokenFile(t, dir))
	p.Kill()
	if err := fs.Cut(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dataDir)
	if err != nil {
		t.Fatalf("data dir after the cut: %v", err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v, want 0700", st.Mode().Perm())
	}
}
