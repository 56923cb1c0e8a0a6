package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/posfleet/posfleet/server/payment"
	"github.com/posfleet/posfleet/server/store"
)

// runMigrateStore copies a stopped server's Badger data directory into an
// empty PostgreSQL database, checks the copy key by key (count and SHA-256)
// and checks the payment records in their new home.
func runMigrateStore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate-store", stderr)
	dataDir := fs.String("from-data-dir", "", "data directory of a stopped server to copy (required; opened read-only)")
	url := fs.String("to-database-url", "", "PostgreSQL connection string of an empty database to copy into (required; its schema is migrated first)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *dataDir == "":
		return errors.New("--from-data-dir (or POSFLEET_FROM_DATA_DIR) is required")
	case *url == "":
		return errors.New("--to-database-url (or POSFLEET_TO_DATABASE_URL) is required")
	}
	if err := requireDatabase(*dataDir); err != nil {
		return err
	}
	opts := store.DefaultOptions(*dataDir)
	opts.ReadOnly, opts.GCInterval = true, 0
	src, err := store.Open(opts, nil)
	if errors.Is(err, store.ErrReadOnlyReplay) {
		return fmt.Errorf("%w: start and stop the server on it once (or run posfleet verify), then copy", err)
	}
	if err != nil {
		return fmt.Errorf("%w (is the server still running?)", err)
	}
	defer src.Close()
	// A node serving the target holds its writer role: refuse rather
	// than wait for it as a standby would.
	octx, serving := context.WithCancelCause(ctx)
	defer serving(nil)
	dopts := store.DefaultPostgresOptions(*url)
	dopts.OnStandby = func() {
		serving(errors.New("a posfleet node is serving the target database; stop it before copying into it"))
	}
	dst, err := store.OpenPostgres(octx, dopts, nil)
	if err != nil {
		if cause := context.Cause(octx); cause != nil && ctx.Err() == nil {
			return cause
		}
		return err
	}
	defer dst.Close()
	d, err := store.Copy(ctx, dst, src)
	if errors.Is(err, store.ErrTargetNotEmpty) {
		return fmt.Errorf("%w: posfleet migrate-store copies only into an empty database", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "copied %d keys (%d bytes) from %s; the target holds the same keys and values (SHA-256 %x)\n",
		d.Keys, d.Bytes, *dataDir, d.SHA256)
	rep, err := payment.Verify(ctx, dst)
	if err != nil {
		return fmt.Errorf("check payments in the target: %w", err)
	}
	kinds := make([]string, 0, len(rep.Records))
	for k := range rep.Records {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		fmt.Fprintf(stdout, "payment %s: %d\n", k, rep.Records[k])
	}
	if len(rep.Problems) > 0 {
		return fmt.Errorf("payment records in the target are inconsistent:\n  %s", strings.Join(rep.Problems, "\n  "))
	}
	fmt.Fprintln(stdout, "payment records consistent")
	return nil
}
