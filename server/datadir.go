package server

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// mkdirDurable creates dir and any missing parents with mode perm, like
// os.MkdirAll, and fsyncs the parent of each directory it created, so that
// a power cut after the first commit cannot take the new data directory,
// and every acknowledged write in it, away.
func mkdirDurable(dir string, perm fs.FileMode) error {
	dir = filepath.Clean(dir)
	var created []string // outermost last
	for d := dir; ; d = filepath.Dir(d) {
		_, err := os.Stat(d)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || filepath.Dir(d) == d {
			return err
		}
		created = append(created, d)
	}
	if err := os.MkdirAll(dir, perm); err != nil {
		return err
	}
	for _, d := range created {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return fmt.Errorf("sync %s: %w", filepath.Dir(d), err)
		}
	}
	return nil
}

// syncDir fsyncs the directory dir, making the names in it durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
