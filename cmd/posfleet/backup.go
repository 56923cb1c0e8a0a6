package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/posfleet/posfleet/server/store"
)

func runBackup(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlagSet("backup", stderr)
	dataDir := fs.String("data-dir", "./posfleet-data", "data directory of a stopped server")
	out := fs.String("out", "", "backup file to write (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out is required")
	}
	if err := requireDatabase(*dataDir); err != nil {
		return err
	}
	if err := requireAbsent(*out); err != nil {
		return err
	}
	// Opening read-write takes Badger's lock on the directory, which a
	// running server holds.
	db, err := store.Open(store.DefaultOptions(*dataDir), nil)
	if err != nil {
		return fmt.Errorf("%w (is the server still running?)", err)
	}
	defer db.Close()
	return writeFileAtomic(*out, func(w io.Writer) error { return db.Backup(ctx, w) })
}

// requireDatabase fails unless dir holds a database: opening a missing or
// empty directory would create an empty one, and back that up.
func requireDatabase(dir string) error {
	ok, err := store.Exists(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if !ok {
		return fmt.Errorf("no database in data directory %s", dir)
	}
	return nil
}

// requireAbsent fails if path exists.
func requireAbsent(path string) error {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return fmt.Errorf("%s already exists", path)
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	return nil
}

// writeFileAtomic creates path (mode 0600) with what write writes. It writes
// to a temporary file beside path, syncs it and renames it into place, so
// path appears only once complete; on failure the temporary file is removed.
// An existing path is replaced.
func writeFileAtomic(path string, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes the entries of dir (a rename into it) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

func runRestore(_ context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlagSet("restore", stderr)
	dataDir := fs.String("data-dir", "./posfleet-data", "empty or missing data directory to restore into")
	in := fs.String("in", "", "backup file to read (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *in == "" {
		return errors.New("--in is required")
	}
	if err := requireEmpty(*dataDir); err != nil {
		return err
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	return restoreDir(*dataDir, f)
}

// requireEmpty fails unless dir is missing or an empty directory.
func requireEmpty(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("data directory: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("data directory %s is not empty", dir)
	}
	return nil
}

// restoreDir restores the backup read from r as the database in dir, which
// must be missing or empty. It builds the database in a new directory beside
// dir (mode 0700: it holds the server's signing key) and renames that to dir
// only once the whole backup has been loaded and checked, so a failed
// restore leaves dir as it was.
func restoreDir(dir string, r io.Reader) (err error) {
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".restore-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := restoreInto(tmp, r); err != nil {
		return err
	}
	// An empty dir is removed first: a rename does not replace a directory.
	// Remove fails if something has appeared in it meanwhile.
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	return syncDir(parent)
}

// restoreInto creates a database in dir and restores the backup read from r
// into it.
func restoreInto(dir string, r io.Reader) error {
	db, err := store.Open(store.DefaultOptions(dir), nil)
	if err != nil {
		return err
	}
	if err := db.Restore(r); err != nil {
		db.Close()
		return err
	}
	return db.Close()
}
