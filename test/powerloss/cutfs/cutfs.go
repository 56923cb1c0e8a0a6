// Package cutfs is a FUSE file system for power-loss tests. It passes every
// operation through to a backing directory and remembers, per file and per
// directory, what has not been made durable yet; Cut then simulates a power
// cut by unmounting and rolling the backing directory back to its last
// durable state.
//
// What it models:
//
//   - File contents and sizes: a write or truncate is durable once the file
//     is fsynced (fsync or fdatasync, through any handle, including msync of
//     a shared mapping, which the kernel turns into writes and an fsync).
//     Everything written since is dropped at a cut, whole: no torn sectors
//     or reordered pages are modelled. This is stricter than ext4 with
//     data=ordered, which also writes out other files' data when it
//     commits its journal.
//   - Names: creating a file or directory, removing one and renaming one
//     are namespace changes. Under POSIX, a change is durable once every
//     directory it touched is fsynced. Under Ext4Ordered, as on a
//     journalling file system, any fsync (of a file or a directory) also
//     makes every earlier namespace change durable: the journal commits
//     them in order. Until then a cut undoes them, newest first: a created
//     file disappears (even if its own contents were fsynced), a removed
//     file comes back with its durable contents, a rename is reversed and a
//     file it replaced returns.
//   - Not modelled: permissions, owners, times, extended attributes,
//     hard links and symlinks (passed through, kept at a cut), renaming
//     directories, and fallocate and copy_file_range (refused, so callers
//     fall back to plain writes).
//
// Use the mount from another process (the program under test), or at
// least never map its files into the serving process: a page fault on a
// FUSE file served by the faulting Go process can block the runtime's
// stop-the-world, and with it the FUSE server, for ever.
package cutfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Stats counts what cuts dropped.
type Stats struct {
	// Cuts is how many cuts were simulated.
	Cuts int
	// DroppedWrites is how many unsynced writes and truncates were undone.
	DroppedWrites int
	// DroppedBytes is how many bytes those writes had written.
	DroppedBytes int64
	// UndoneNames is how many creates, removes and renames were undone.
	UndoneNames int
}

// Model says when a namespace change becomes durable.
type Model int

const (
	// POSIX makes a namespace change durable only when the directories it
	// touched are fsynced.
	POSIX Model = iota
	// Ext4Ordered makes a namespace change durable at the next fsync of
	// any file or directory, as ext4's journal does.
	Ext4Ordered
)

// FS is a mounted cutfs. Its methods are safe for concurrent use.
type FS struct {
	backing string
	trash   string
	mnt     string
	model   Model

	mu sync.Mutex // guards everything below; held across each write so that undo data is exact
	// server is the mounted FUSE server, nil between cuts.
	server *fuse.Server
	// files holds the unsynced changes per backing inode number.
	files map[uint64][]undo
	// names holds the namespace changes not yet durable, oldest first.
	names []*nameOp
	seq   int
	stats Stats
}

// undo restores a file to how it was before one write or truncate:
// truncate to size, then write old at off.
type undo struct {
	size  int64
	off   int64
	old   []byte
	zeros int64 // the old bytes were this many zeros (old is nil)
	n     int64 // bytes the change wrote, for Stats
}

// nameOp is a namespace change waiting for its directories to be fsynced.
type nameOp struct {
	// dirs are the directories (paths relative to the backing root) whose
	// fsync makes the change durable; an op is durable when dirs is empty.
	dirs []string
	// undo reverses the change in the backing directory.
	undo func() error
	// forget runs when the change becomes durable.
	forget func()
}

// Mount mounts a cutfs at mountpoint over backing, which must exist, with
// the given model of namespace durability. Removed files are kept in a
// sibling directory of backing until their removal is durable.
func Mount(mountpoint, backing string, model Model) (*FS, error) {
	f := &FS{
		model:   model,
		backing: filepath.Clean(backing),
		trash:   filepath.Clean(backing) + ".cutfs-trash",
		mnt:     mountpoint,
		files:   map[uint64][]undo{},
	}
	if err := os.MkdirAll(f.trash, 0o700); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.mount(); err != nil {
		return nil, err
	}
	return f, nil
}

// mount starts a FUSE server; f.mu is held.
func (f *FS) mount() error {
	var st syscall.Stat_t
	if err := syscall.Stat(f.backing, &st); err != nil {
		return fmt.Errorf("cutfs: %w", err)
	}
	root := &gofs.LoopbackRoot{Path: f.backing, Dev: uint64(st.Dev)}
	// Children become nodes of ours through node.WrapChild.
	root.RootNode = &node{LoopbackNode: gofs.LoopbackNode{RootData: root}, fs: f}
	sec := time.Second
	srv, err := gofs.Mount(f.mnt, root.RootNode, &gofs.Options{
		EntryTimeout: &sec,
		AttrTimeout:  &sec,
		MountOptions: fuse.MountOptions{
			FsName:            "cutfs",
			Name:              "cutfs",
			DirectMountStrict: os.Geteuid() == 0,
			MaxBackground:     64,
		},
	})
	if err != nil {
		return fmt.Errorf("cutfs: mount %s: %w", f.mnt, err)
	}
	f.server = srv
	return nil
}

// unmount stops the FUSE server; f.mu is not held, so that the kernel can
// still write dirty pages back while the file system unmounts.
func (f *FS) unmount() error {
	f.mu.Lock()
	srv := f.server
	f.server = nil
	f.mu.Unlock()
	if srv == nil {
		return nil
	}
	var err error
	for range 50 { // a process that just died may still hold files briefly
		if err = srv.Unmount(); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("cutfs: unmount %s: %w", f.mnt, err)
	}
	srv.Wait()
	return nil
}

// Cut simulates a power cut: it unmounts the file system (every process
// using it must have exited), drops everything that was not durable, and
// mounts it again.
func (f *FS) Cut() error {
	if err := f.unmount(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.rollback(); err != nil {
		return err
	}
	f.stats.Cuts++
	return f.mount()
}

// Close unmounts the file system and keeps the backing directory as it is
// (unsynced data included), as a clean shutdown would.
func (f *FS) Close() error {
	err := f.unmount()
	return errors.Join(err, os.RemoveAll(f.trash))
}

// Stats returns what the cuts so far dropped.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// rollback undoes namespace changes, newest first, then file changes; f.mu
// is held.
func (f *FS) rollback() error {
	for _, op := range slices.Backward(f.names) {
		if err := op.undo(); err != nil {
			return fmt.Errorf("cutfs: rollback: %w", err)
		}
		f.stats.UndoneNames++
	}
	f.names = nil
	paths := map[uint64]string{}
	err := filepath.WalkDir(f.backing, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		paths[info.Sys().(*syscall.Stat_t).Ino] = p
		return nil
	})
	if err != nil {
		return fmt.Errorf("cutfs: rollback: %w", err)
	}
	for ino, log := range f.files {
		p, ok := paths[ino]
		if !ok {
			continue // the file's creation was undone, or its removal was durable
		}
		if err := undoFile(p, log); err != nil {
			return fmt.Errorf("cutfs: rollback %s: %w", p, err)
		}
		for _, u := range log {
			f.stats.DroppedWrites++
			f.stats.DroppedBytes += u.n
		}
	}
	clear(f.files)
	return nil
}

// undoFile applies log to the file at p, newest change first.
func undoFile(p string, log []undo) error {
	file, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer file.Close()
	for _, u := range slices.Backward(log) {
		if err := file.Truncate(u.size); err != nil {
			return err
		}
		old := u.old
		if u.zeros > 0 {
			old = make([]byte, u.zeros)
		}
		if _, err := file.WriteAt(old, u.off); err != nil {
			return err
		}
	}
	return nil
}

// record saves what a write of n bytes at off (or, with truncate, a
// truncate to off) is about to change in the file open as fd; f.mu is held.
func (f *FS) record(fd int, off, n int64, truncate bool) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return gofs.ToErrno(err)
	}
	u := undo{size: st.Size, off: off, n: n}
	end := off + n
	if truncate {
		u.n, end = 0, st.Size
	}
	if end > st.Size {
		end = st.Size
	}
	if end > off {
		old := make([]byte, end-off)
		if err := pread(fd, old, off); err != nil {
			return gofs.ToErrno(err)
		}
		if allZero(old) {
			u.zeros = int64(len(old))
		} else {
			u.old = old
		}
	}
	f.files[st.Ino] = append(f.files[st.Ino], u)
	return 0
}

// synced marks the file open as fd durable; f.mu is held.
func (f *FS) synced(fd int) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return gofs.ToErrno(err)
	}
	delete(f.files, st.Ino)
	if f.model == Ext4Ordered {
		f.namesDurable(func(*nameOp) bool { return true })
	}
	return 0
}

// dirSynced makes durable the namespace changes whose directories have all
// been fsynced, or under Ext4Ordered every namespace change; f.mu is held.
func (f *FS) dirSynced(dir string) {
	f.namesDurable(func(op *nameOp) bool {
		op.dirs = slices.DeleteFunc(op.dirs, func(d string) bool { return d == dir })
		return len(op.dirs) == 0 || f.model == Ext4Ordered
	})
}

// namesDurable forgets the namespace changes for which durable returns
// true; f.mu is held.
func (f *FS) namesDurable(durable func(*nameOp) bool) {
	kept := f.names[:0]
	for _, op := range f.names {
		if !durable(op) {
			kept = append(kept, op)
			continue
		}
		if op.forget != nil {
			op.forget()
		}
	}
	clear(f.names[len(kept):])
	f.names = kept
}

// toTrash moves the backing path p aside, returning where it went; f.mu is
// held.
func (f *FS) toTrash(p string) (string, error) {
	f.seq++
	t := filepath.Join(f.trash, fmt.Sprint(f.seq))
	return t, os.Rename(p, t)
}

// pread reads len(b) bytes at off from the file open as fd, also when fd
// is open for writing only.
func pread(fd int, b []byte, off int64) error {
	_, err := syscall.Pread(fd, b, off)
	if err != syscall.EBADF {
		return err
	}
	r, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = r.ReadAt(b, off)
	return err
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// MountForTest mounts a cutfs at mountpoint over backing for the test and
// unmounts it when the test ends. Without /dev/fuse, or when mounting
// fails, the test is skipped with the reason, or fails under CI=true,
// where the rig must run.
func MountForTest(t testing.TB, mountpoint, backing string, model Model) *FS {
	t.Helper()
	unavailable := func(err error) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("power-loss rig unavailable under CI=true: %v", err)
		}
		t.Skipf("power-loss rig unavailable (needs /dev/fuse and root or fusermount3): %v", err)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		unavailable(err)
	}
	for _, d := range []string{mountpoint, backing} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Mount(mountpoint, backing, model)
	if err != nil {
		unavailable(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("cutfs: %v", err)
		}
	})
	return f
}
