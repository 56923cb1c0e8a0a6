package server

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
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

// ErrDataDirOwner is returned by New when the data directory, or a file in
// it, belongs to another user than the one running the server. Opening it
// anyway would create files the real owner cannot read: the next start as
// that owner fails on the database's MANIFEST. Config.TakeOwnership makes
// the server take the directory over instead.
var ErrDataDirOwner = errors.New("data directory belongs to another user")

// ownedDir checks that dir (if it exists) and the entries directly in it
// belong to the effective user. With take set, it makes everything under
// dir the effective user's instead, and logs what it did. It does nothing
// where file ownership is not known (not a Unix system).
func ownedDir(dir string, take bool, logger *slog.Logger) error {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("server: data dir: %w", err)
	}
	me := os.Geteuid()
	foreign, owner := "", -1
	if uid, ok := fileOwner(st); ok && uid != me {
		foreign, owner = dir, uid
	} else if ok {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("server: data dir: %w", err)
		}
		for _, e := range entries {
			info, err := e.Info()
			if err != nil {
				return fmt.Errorf("server: data dir: %w", err)
			}
			if uid, _ := fileOwner(info); uid != me {
				foreign, owner = filepath.Join(dir, e.Name()), uid
				break
			}
		}
	}
	if foreign == "" {
		return nil
	}
	if !take {
		return fmt.Errorf("server: %w: %s is owned by %s, but posfleet runs as %s; run posfleet as %s, or give --take-ownership to make the directory %s's",
			ErrDataDirOwner, foreign, userName(owner), userName(me), userName(owner), userName(me))
	}
	gid := os.Getegid()
	err = filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, me, gid)
	})
	if err != nil {
		return fmt.Errorf("server: take ownership of data dir: %w", err)
	}
	logger.Warn("took ownership of the data dir", "dir", dir, "was_owned_by", userName(owner), "now", userName(me))
	return nil
}

// userName describes uid as "name (uid N)", or "uid N" when it has no name.
func userName(uid int) string {
	id := strconv.Itoa(uid)
	if u, err := user.LookupId(id); err == nil {
		return u.Username + " (uid " + id + ")"
	}
	return "uid " + id
}
