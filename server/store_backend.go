package server

import (
	"context"
	"log/slog"

	"github.com/posfleet/posfleet/server/store"
)

// The storage backends a server runs on (Config.Store).
const (
	// StoreBadger keeps the database in the data directory (the default).
	StoreBadger = "badger"
	// StorePostgres keeps it in a PostgreSQL database (Config.DatabaseURL).
	StorePostgres = "postgres"
)

// testStore, when set (tests only: export_test.go), adjusts the storage
// settings of every server opened: the server's tests run on PostgreSQL
// with POSFLEET_TEST_STORE=postgres.
var testStore func(cfg *Config) error

// openPostgres opens the PostgreSQL database of cfg, applying pending
// schema migrations. There is no disk-space watch: the database's disk is
// PostgreSQL's to watch.
func openPostgres(ctx context.Context, cfg Config, onLost func(error), logger *slog.Logger) (*store.DB, error) {
	opts := store.DefaultPostgresOptions(cfg.DatabaseURL)
	opts.CommitFault = cfg.commitFault
	opts.OnStandby = cfg.OnStandby
	opts.OnLeaderLost = onLost
	return store.OpenPostgres(ctx, opts, logger.With("component", "postgres"))
}
