package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/store"
)

func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", stderr)
	dataDir := fs.String("data-dir", "./posfleet-data", "data directory of a stopped server (without --target)")
	out := fs.String("out", "", "backup file to write (required)")
	conn := addAdminConnFlags(fs, "", "address of a running server to back up online (ADMIN token needed); without it, back up --data-dir offline")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out is required")
	}
	if err := requireAbsent(*out); err != nil {
		return err
	}
	var sum backupSum
	var err error
	if *conn.target != "" {
		err = backupOnline(ctx, conn, *out, &sum)
	} else {
		err = backupOffline(ctx, *dataDir, *out, &sum)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "wrote %s: %d bytes, sha256 %x\n", *out, sum.n, sum.h.Sum(nil))
	return err
}

// backupSum counts and hashes a backup file as it is written, for the
// summary backup prints (the SHA-256 is that of the whole file, as
// sha256sum shows it).
type backupSum struct {
	h hash.Hash
	n int64
}

// writer returns w extended to count and hash what goes through it.
func (s *backupSum) writer(w io.Writer) io.Writer {
	s.h, s.n = sha256.New(), 0
	return io.MultiWriter(w, s.h, writerFunc(func(b []byte) (int, error) { s.n += int64(len(b)); return len(b), nil }))
}

// writerFunc is an io.Writer made of a function.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// backupOffline writes a backup of the database in dataDir, which no server
// may hold open, to out.
func backupOffline(ctx context.Context, dataDir, out string, sum *backupSum) error {
	if err := requireDatabase(dataDir); err != nil {
		return err
	}
	// Opening read-write takes Badger's lock on the directory, which a
	// running server holds.
	db, err := store.Open(store.DefaultOptions(dataDir), nil)
	if err != nil {
		return fmt.Errorf("%w (is the server still running? give --target to back it up online)", err)
	}
	defer db.Close()
	return writeFileAtomic(out, func(w io.Writer) error { return db.Backup(ctx, sum.writer(w)) })
}

// backupOnline streams a backup from the running server conn names into
// out. The file is checked (store.CheckBackup) as it arrives and kept only
// if it is a whole, valid backup.
func backupOnline(ctx context.Context, conn *adminConn, out string, sum *backupSum) error {
	// The stream lasts as long as the backup takes: no call deadline.
	c, err := conn.dial(client.WithDefaultTimeout(0))
	if err != nil {
		return err
	}
	defer c.Close()
	return writeFileAtomic(out, func(w io.Writer) error {
		stream, err := c.Admin().Backup(ctx, &pb.BackupRequest{})
		if err != nil {
			return err
		}
		pr, pw := io.Pipe()
		checked := make(chan error, 1)
		go func() {
			err := store.CheckBackup(pr)
			pr.CloseWithError(err) // unblocks the writer if the check failed early
			checked <- err
		}()
		dst := io.MultiWriter(sum.writer(w), pw)
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err == nil {
				_, err = dst.Write(resp.GetData())
			}
			if err != nil {
				pw.CloseWithError(err)
				<-checked
				return fmt.Errorf("online backup: %w", err)
			}
		}
		pw.Close()
		if err := <-checked; err != nil {
			return fmt.Errorf("online backup: what the server sent is not a whole backup: %w", err)
		}
		return nil
	})
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

func runRestore(_ context.Context, args []string, stdout, stderr io.Writer) error {
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
	if err := restoreDir(*dataDir, f); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "restored %s into %s\n", *in, *dataDir)
	return err
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
