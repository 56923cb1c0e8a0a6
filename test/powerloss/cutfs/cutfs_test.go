package cutfs_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/posfleet/posfleet/test/powerloss/cutfs"
)

// rig mounts a cutfs and returns it with its mount point.
func rig(t *testing.T, model cutfs.Model) (*cutfs.FS, string) {
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	return cutfs.MountForTest(t, mnt, filepath.Join(dir, "backing"), model), mnt
}

func write(t *testing.T, p, s string, sync bool) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

func syncDir(t *testing.T, p string) {
	t.Helper()
	d, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

// read returns the file's contents, or "<absent>".
func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return "<absent>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCut(t *testing.T) {
	tests := []struct {
		name  string
		model cutfs.Model
		// before runs on the mount before the cut.
		before func(t *testing.T, mnt string)
		want   map[string]string
	}{
		{
			name: "unsynced write dropped, synced kept",
			before: func(t *testing.T, mnt string) {
				write(t, mnt+"/a", "durable", true)
				syncDir(t, mnt)
				f, err := os.OpenFile(mnt+"/a", os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				for _, w := range []struct {
					s   string
					off int64
				}{{" and lost", 7}, {"LOST", 0}} {
					if _, err := f.WriteAt([]byte(w.s), w.off); err != nil {
						t.Fatal(err)
					}
				}
			},
			want: map[string]string{"a": "durable"},
		},
		{
			name: "new file fsynced without its directory disappears",
			before: func(t *testing.T, mnt string) {
				write(t, mnt+"/a", "data", true)
			},
			want: map[string]string{"a": "<absent>"},
		},
		{
			name:  "new file fsynced keeps its name under ext4",
			model: cutfs.Ext4Ordered,
			before: func(t *testing.T, mnt string) {
				write(t, mnt+"/a", "data", true)
			},
			want: map[string]string{"a": "data"},
		},
		{
			name:  "any fsync commits earlier names under ext4",
			model: cutfs.Ext4Ordered,
			before: func(t *testing.T, mnt string) {
				write(t, mnt+"/old", "old", true)
				write(t, mnt+"/new", "new", true)
				os.Rename(mnt+"/new", mnt+"/old")
				write(t, mnt+"/unsynced", "unsynced", false)
				write(t, mnt+"/other", "other", true)
			},
			want: map[string]string{"old": "new", "new": "<absent>", "unsynced": "", "other": "other"},
		},
		{
			name:  "names after the last fsync are undone under ext4",
			model: cutfs.Ext4Ordered,
			before: func(t *testing.T, mnt string) {
				write(t, mnt+"/a", "a", true)
				write(t, mnt+"/b", "b", false)
				os.Remove(mnt + "/a")
			},
			want: map[string]string{"a": "a", "b": "<absent>"},
		},
		{
			name: "new file and directory fsynced is kept",
			before: func(t *testing.T, mnt string) {
				write(t, mnt+"/a", "data", true)
				syncDir(t, mnt)
			},
			want: map[string]string{"a": "data"},
		},
		{
			name: "directory fsynced before the file keeps an empty file",
			before: func(t *testing.T, mnt string) {
				write(t, mnt+"/a", "data", false)
				syncDir(t, mnt)
			},
			want: map[string]string{"a": ""},
		},
		{
			name: "remove without directory fsync comes back",
			before: func(t *testing.T, mnt string) {
				write(t, mnt+"/a", "durable", true)
				syncDir(t, mnt)
				if err := os.Remove(mnt + "/a"); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"a": "durable"},
		},
		{
			name: "remove with directory fsync is durable",
			before: func(t *testing.T, mnt string) {
				write(t, mnt+"/a", "durable", true)
				syncDir(t, mnt)
				os.Remove(mnt + "/a")
				syncDir(t, mnt)
			},
			want: map[string]string{"a": "<absent>"},
		},
		{
			name: "rename over a file without directory fsync is reversed",
			before: func(t *testing.T, mnt string) {
				write(t, mnt+"/old", "old", true)
				write(t, mnt+"/new", "new", true)
				syncDir(t, mnt)
				if err := os.Rename(mnt+"/new", mnt+"/old"); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"old": "old", "new": "new"},
		},
		{
			name: "rename with directory fsync is durable",
			before: func(t *testing.T, mnt string) {
				write(t, mnt+"/old", "old", true)
				write(t, mnt+"/new", "new", true)
				syncDir(t, mnt)
				os.Rename(mnt+"/new", mnt+"/old")
				syncDir(t, mnt)
			},
			want: map[string]string{"old": "new", "new": "<absent>"},
		},
		{
			name: "unsynced truncate is undone",
			before: func(t *testing.T, mnt string) {
				write(t, mnt+"/a", "durable data", true)
				syncDir(t, mnt)
				if err := os.Truncate(mnt+"/a", 3); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"a": "durable data"},
		},
		{
			name: "mmap writes count once msynced",
			before: func(t *testing.T, mnt string) {
				write(t, mnt+"/kept", "........", true)
				write(t, mnt+"/lost", "........", true)
				syncDir(t, mnt)
				mmapWrite(t, mnt+"/kept", "mmapped!", true)
				mmapWrite(t, mnt+"/lost", "mmapped!", false)
			},
			want: map[string]string{"kept": "mmapped!", "lost": "........"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, mnt := rig(t, tt.model)
			tt.before(t, mnt)
			if err := f.Cut(); err != nil {
				t.Fatal(err)
			}
			for name, want := range tt.want {
				if got := read(t, filepath.Join(mnt, name)); got != want {
					t.Errorf("%s after the cut: got %q, want %q", name, got, want)
				}
			}
		})
	}
}

// mmapWrite writes s over the start of the file through a shared mapping,
// with msync when sync is set. It runs in a child process: a page fault on
// a FUSE file served by the faulting process itself can block the Go
// runtime's stop-the-world, and with it the FUSE server, for ever.
func mmapWrite(t *testing.T, p, s string, sync bool) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestMmapWriteChild$")
	cmd.Env = append(os.Environ(), "CUTFS_MMAP_FILE="+p, "CUTFS_MMAP_DATA="+s, fmt.Sprint("CUTFS_MMAP_SYNC=", sync))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mmap write: %v\n%s", err, out)
	}
}

// TestMmapWriteChild is mmapWrite's child process; it does nothing in a
// normal run.
func TestMmapWriteChild(t *testing.T) {
	p := os.Getenv("CUTFS_MMAP_FILE")
	if p == "" {
		t.Skip("runs only as mmapWrite's child")
	}
	s := os.Getenv("CUTFS_MMAP_DATA")
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, len(s), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	copy(m, s)
	if os.Getenv("CUTFS_MMAP_SYNC") == "true" {
		if _, _, errno := syscall.Syscall(syscall.SYS_MSYNC, uintptr(unsafePointer(m)), uintptr(len(m)), 4 /* MS_SYNC */); errno != 0 {
			t.Fatal(errno)
		}
	}
	if err := syscall.Munmap(m); err != nil {
		t.Fatal(err)
	}
}

// A clean unmount keeps unsynced data: only a cut drops it.
func TestCloseKeepsUnsyncedData(t *testing.T) {
	dir := t.TempDir()
	mnt, backing := filepath.Join(dir, "mnt"), filepath.Join(dir, "backing")
	f := cutfs.MountForTest(t, mnt, backing, cutfs.POSIX)
	write(t, mnt+"/a", "unsynced", false)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, backing+"/a"); got != "unsynced" {
		t.Errorf("backing file after a clean unmount: got %q, want %q", got, "unsynced")
	}
}
