package store_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/posfleet/posfleet/internal/pgtest"
	"github.com/posfleet/posfleet/server/store"
)

func TestCheckPostgresURL(t *testing.T) {
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"postgres://u:secret@127.0.0.1/db?sslmode=disable", true},
		{"postgres://u:secret@localhost/db", true},
		{"postgres://u:secret@[::1]:5433/db?sslmode=disable", true},
		{"host=/run/postgresql dbname=posfleet", true},
		{"postgres://u:secret@db.example.com/db?sslmode=require", true},
		{"postgres://u:secret@db.example.com/db?sslmode=verify-full", true},
		{"postgres://u:secret@db.example.com/db?sslmode=verify-ca", true},
		{"postgres://u:secret@db.example.com/db?sslmode=disable", false},
		{"postgres://u:secret@db.example.com/db", false}, // prefer: may fall back to plain
		{"postgres://u:secret@db.example.com/db?sslmode=allow", false},
		{"postgres://u:secret@10.0.0.5/db?sslmode=prefer", false},
		{"postgres://u:secret@127.0.0.1,db.example.com/db?sslmode=disable", false},
		{"postgres://u:secret@a.example.com,b.example.com/db?sslmode=require&target_session_attrs=read-write", true},
		{"", false},
		{"postgres://u:secret@127.0.0.1/db?sslmode=bogus", false},
	} {
		err := store.CheckPostgresURL(c.url)
		if (err == nil) != c.ok {
			t.Errorf("CheckPostgresURL(%q) = %v, want ok %v", c.url, err, c.ok)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("CheckPostgresURL(%q): error %q shows the password", c.url, err)
		}
	}
	opts := store.DefaultPostgresOptions("postgres://u:secret@db.example.com/db?sslmode=disable")
	if _, err := store.OpenPostgres(t.Context(), opts, nil); err == nil || !strings.Contains(err.Error(), "db.example.com") || !strings.Contains(err.Error(), "sslmode=require") {
		t.Errorf("OpenPostgres of a plain remote URL: got %v, want a refusal naming the host and sslmode", err)
	}
}

func TestPostgresOptionsValidate(t *testing.T) {
	base := store.DefaultPostgresOptions("postgres://127.0.0.1/db")
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, change := range map[string]func(*store.PostgresOptions){
		"no URL":            func(o *store.PostgresOptions) { o.URL = "" },
		"no connections":    func(o *store.PostgresOptions) { o.MaxConns = 0 },
		"no timeout":        func(o *store.PostgresOptions) { o.StatementTimeout = 0 },
		"negative interval": func(o *store.PostgresOptions) { o.ExpiryInterval = -time.Second },
		"no leader ping":    func(o *store.PostgresOptions) { o.LeaderPing = 0 },
		"no ping timeout":   func(o *store.PostgresOptions) { o.LeaderPingTimeout = 0 },
		"negative grace":    func(o *store.PostgresOptions) { o.LeaderGrace = -time.Second },
	} {
		o := base
		change(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: Validate = nil, want an error", name)
		}
	}
}

// setSchemaVersion sets the version recorded in the database at url.
func setSchemaVersion(t *testing.T, url string, v int) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "UPDATE "+store.MigrationsTable+" SET version = $1", v); err != nil {
		t.Fatal(err)
	}
}

func TestPostgresMigrations(t *testing.T) {
	url := pgtest.NewDatabase(t)
	want := store.SchemaVersion()
	if want < 1 {
		t.Fatalf("SchemaVersion = %d, want at least 1", want)
	}

	// Without migrating, an empty database is refused.
	opts := store.DefaultPostgresOptions(url)
	opts.NoMigrate = true
	if _, err := store.OpenPostgres(t.Context(), opts, nil); !errors.Is(err, store.ErrSchemaOutdated) {
		t.Fatalf("OpenPostgres(NoMigrate) on an empty database: got %v, want ErrSchemaOutdated", err)
	}

	before, after, err := store.MigratePostgres(t.Context(), url, nil)
	if err != nil || before != 0 || after != want {
		t.Fatalf("MigratePostgres = %d, %d, %v; want 0, %d, nil", before, after, err, want)
	}
	before, after, err = store.MigratePostgres(t.Context(), url, nil)
	if err != nil || before != want || after != want {
		t.Fatalf("MigratePostgres again = %d, %d, %v; want %d, %d, nil", before, after, err, want, want)
	}
	db, err := store.OpenPostgres(t.Context(), opts, nil)
	if err != nil {
		t.Fatalf("OpenPostgres(NoMigrate) on a migrated database: %v", err)
	}
	db.Close()

	// A schema from a newer posfleet is refused, naming both versions.
	setSchemaVersion(t, url, int(want)+1)
	for name, open := range map[string]func() error{
		"OpenPostgres": func() error {
			db, err := store.OpenPostgres(t.Context(), store.DefaultPostgresOptions(url), nil)
			if err == nil {
				db.Close()
			}
			return err
		},
		"MigratePostgres": func() error { _, _, err := store.MigratePostgres(t.Context(), url, nil); return err },
	} {
		err := open()
		if !errors.Is(err, store.ErrSchemaTooNew) {
			t.Errorf("%s on a newer schema: got %v, want ErrSchemaTooNew", name, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "version "+itoa(want+1)) || !strings.Contains(msg, "up to "+itoa(want)) {
			t.Errorf("%s on a newer schema: %q does not name both versions", name, msg)
		}
	}
}

func itoa(v uint) string { return strconv.FormatUint(uint64(v), 10) }

// Expired rows are deleted by the sweep, not only hidden from reads.
func TestPostgresExpirySweep(t *testing.T) {
	url := pgtest.NewDatabase(t)
	opts := store.DefaultPostgresOptions(url)
	opts.ExpiryInterval = 50 * time.Millisecond
	db, err := store.OpenPostgres(t.Context(), opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *store.Txn) error {
		if err := tx.SetWithTTL([]byte("gone"), []byte("x"), time.Second); err != nil {
			return err
		}
		return tx.Set([]byte("kept"), []byte("y"))
	})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows, _ := conn.Query(t.Context(), "SELECT key FROM posfleet_kv ORDER BY key")
		keys, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 1 && bytes.Equal(keys[0], []byte("kept")) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rows left 10 s after the expiry: %q, want [kept]", keys)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Badger-only features say so on PostgreSQL.
func TestPostgresBadgerOnly(t *testing.T) {
	db, err := store.OpenPostgres(t.Context(), store.DefaultPostgresOptions(pgtest.NewDatabase(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Backup(t.Context(), &bytes.Buffer{}); !errors.Is(err, store.ErrUnsupported) || !strings.Contains(err.Error(), "pg_dump") {
		t.Errorf("Backup: got %v, want ErrUnsupported naming pg_dump", err)
	}
	if err := db.Restore(&bytes.Buffer{}); !errors.Is(err, store.ErrUnsupported) {
		t.Errorf("Restore: got %v, want ErrUnsupported", err)
	}
	if wm := db.Watermark(); wm != nil {
		t.Errorf("Watermark = %v, want nil", wm)
	}
	if _, err := store.WatchSpace(db, store.DefaultSpaceOptions(), nil); err == nil {
		t.Error("WatchSpace: got nil error, want a refusal")
	}
	if err := db.Writable(); err != nil {
		t.Errorf("Writable: %v", err)
	}
	if err := db.CheckSpace(); err != nil {
		t.Errorf("CheckSpace: %v", err)
	}
}
