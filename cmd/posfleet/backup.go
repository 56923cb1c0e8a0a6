package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

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
	db, err := store.Open(store.DefaultOptions(*dataDir), nil)
	if err != nil {
		return fmt.Errorf("%w (is the server still running?)", err)
	}
	defer db.Close()
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := db.Backup(ctx, f); err != nil {
		f.Close()
		os.Remove(*out)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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
	if entries, err := os.ReadDir(*dataDir); err == nil && len(entries) > 0 {
		return fmt.Errorf("data directory %s is not empty", *dataDir)
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return err
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	db, err := store.Open(store.DefaultOptions(*dataDir), nil)
	if err != nil {
		return err
	}
	if err := db.Restore(f); err != nil {
		db.Close()
		return err
	}
	return db.Close()
}
