package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/server/store"
)

// serveSecret are serve's flags whose values --print-config hides: a
// PostgreSQL connection string may hold a password outside a URL's user
// information (password=...).
var serveSecret = map[string]bool{"database-url": true}

// serveStore puts the storage backend into cfg, refusing a combination of
// --store and --database-url that does not go together.
func serveStore(cfg *server.Config, kind, url string) error {
	switch {
	case kind != server.StoreBadger && kind != server.StorePostgres:
		return fmt.Errorf("--store %q: want %s or %s", kind, server.StoreBadger, server.StorePostgres)
	case kind == server.StorePostgres && url == "":
		return errors.New("--store postgres needs --database-url (or POSFLEET_DATABASE_URL)")
	case kind == server.StoreBadger && url != "":
		return errors.New("--database-url is used only with --store postgres; add --store postgres (or POSFLEET_STORE=postgres)")
	}
	cfg.Store, cfg.DatabaseURL = kind, url
	return nil
}

// runMigrate applies the pending schema migrations to a PostgreSQL
// database and prints its schema version before and after.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	url := fs.String("database-url", "", "PostgreSQL connection string of the database to migrate (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *url == "" {
		return errors.New("--database-url (or POSFLEET_DATABASE_URL) is required")
	}
	before, after, err := store.MigratePostgres(ctx, *url, nil)
	if err != nil {
		return err
	}
	if before == after {
		fmt.Fprintf(stdout, "schema version %d: up to date (this posfleet: %d)\n", after, store.SchemaVersion())
		return nil
	}
	fmt.Fprintf(stdout, "schema version %d -> %d\n", before, after)
	return nil
}
