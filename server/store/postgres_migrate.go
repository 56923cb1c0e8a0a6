package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// migrations are the PostgreSQL schema's versioned migrations, applied in
// order: NNNNNN_name.up.sql (and its .down.sql).
//
//go:embed migrations/*.sql
var migrations embed.FS

// MigrationsTable is the table recording the schema version of a
// PostgreSQL database.
const MigrationsTable = "posfleet_schema_migrations"

// ErrSchemaTooNew is returned by OpenPostgres and MigratePostgres for a
// database whose schema was migrated by a newer posfleet: this one does not
// know its records and refuses to run on it.
var ErrSchemaTooNew = errors.New("store: the database schema is newer than this posfleet")

// ErrSchemaOutdated is returned by OpenPostgres with NoMigrate for a
// database whose schema lacks migrations this posfleet needs.
var ErrSchemaOutdated = errors.New("store: the database schema is older than this posfleet; apply its migrations with posfleet migrate")

// ErrSchemaDirty is returned for a database on which a migration failed
// halfway.
var ErrSchemaDirty = errors.New("store: a schema migration failed halfway")

// SchemaVersion returns the schema version this binary runs on: its newest
// embedded migration.
func SchemaVersion() uint {
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		panic(err) // embedded: cannot fail
	}
	var v uint
	for _, e := range entries {
		n, _, _ := strings.Cut(e.Name(), "_")
		if u, err := strconv.ParseUint(n, 10, 32); err == nil {
			v = max(v, uint(u))
		}
	}
	return v
}

// MigratePostgres applies the pending schema migrations to the PostgreSQL
// database at url and returns its schema version before and after (0: no
// schema). It refuses a schema newer than this binary's (ErrSchemaTooNew).
// Concurrent calls, from any process, wait for each other (an advisory
// lock), so nodes starting together migrate once.
func MigratePostgres(ctx context.Context, url string, logger *slog.Logger) (before, after uint, err error) {
	cfg, err := parsePostgresURL(url)
	if err != nil {
		return 0, 0, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return runMigrations(ctx, cfg.ConnConfig, true, logger)
}

// migratePostgres checks the schema version of the database and, when
// apply is set, applies the pending migrations.
func migratePostgres(ctx context.Context, cc *pgx.ConnConfig, apply bool, logger *slog.Logger) error {
	_, _, err := runMigrations(ctx, cc, apply, logger)
	return err
}

func runMigrations(ctx context.Context, cc *pgx.ConnConfig, apply bool, logger *slog.Logger) (before, after uint, err error) {
	src, err := iofs.New(migrations, "migrations")
	if err != nil {
		return 0, 0, fmt.Errorf("store: migrations: %w", err)
	}
	sqlDB := stdlib.OpenDB(*cc)
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return 0, 0, fmt.Errorf("store: connect to PostgreSQL at %s: %w", cc.Host, err)
	}
	drv, err := pgxmigrate.WithInstance(sqlDB, &pgxmigrate.Config{MigrationsTable: MigrationsTable})
	if err != nil {
		sqlDB.Close()
		return 0, 0, fmt.Errorf("store: migrations: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		drv.Close()
		return 0, 0, fmt.Errorf("store: migrations: %w", err)
	}
	defer m.Close()
	before, err = schemaVersion(m)
	if err != nil {
		return 0, 0, err
	}
	want := SchemaVersion()
	switch {
	case before > want:
		return before, before, fmt.Errorf("%w: the database is at schema version %d, this posfleet knows versions up to %d; run a posfleet at least as new as the one that migrated it", ErrSchemaTooNew, before, want)
	case before == want:
		return before, before, nil
	case !apply:
		return before, before, fmt.Errorf("%w (database at schema version %d, this posfleet needs %d)", ErrSchemaOutdated, before, want)
	}
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return before, 0, fmt.Errorf("store: migrate schema from version %d to %d: %w", before, want, err)
	}
	after, err = schemaVersion(m)
	if err != nil {
		return before, 0, err
	}
	logger.Info("schema migrated", "from_version", before, "to_version", after)
	return before, after, nil
}

// schemaVersion returns the database's schema version, 0 when it has none.
func schemaVersion(m *migrate.Migrate) (uint, error) {
	v, dirty, err := m.Version()
	switch {
	case errors.Is(err, migrate.ErrNilVersion):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("store: read the schema version: %w", err)
	case dirty:
		return v, fmt.Errorf("%w: version %d is marked dirty in %s; repair the schema by hand, then set the version there", ErrSchemaDirty, v, MigrationsTable)
	}
	return v, nil
}
