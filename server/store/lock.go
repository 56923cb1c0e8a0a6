package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// LockFile is the name of the file in a data directory that Open locks for
// as long as the database is open. Badger takes its own lock only inside
// badger.Open, after Open has already read the watermark and checked every
// table; without this lock a second process would read files a running
// server is compacting away and could report a healthy database as
// damaged instead of in use.
const LockFile = "posfleet.lock"

// lockDir takes the lock of the database in dir: exclusive to open it for
// writing, shared for a read-only open (several offline checks may run at
// once, never beside a writer). It creates dir when a writer opens a new
// database. A read-only open of a directory that does not exist takes no
// lock (nil, nil): the open fails on its own.
func lockDir(dir string, readOnly bool) (*os.File, error) {
	how := syscall.LOCK_EX
	if readOnly {
		how = syscall.LOCK_SH
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	flags := os.O_RDONLY
	if !readOnly {
		flags = os.O_RDWR | os.O_CREATE
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if readOnly && errors.Is(err, fs.ErrNotExist) {
		return nil, nil // written before the lock existed, or never opened for writing
	}
	if err != nil {
		return nil, fmt.Errorf("store: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrInUse, dir)
		}
		return nil, fmt.Errorf("store: lock %s: %w", path, err)
	}
	return f, nil
}

// unlock releases a lock taken by lockDir; nil is a no-op.
func unlock(f *os.File) {
	if f != nil {
		f.Close() // closing the descriptor releases the flock
	}
}
