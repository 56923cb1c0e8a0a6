// Package storetest opens real stores for tests: in a new temporary
// directory, or in one the test names so that it can close and reopen it.
// Every store opened here is closed when the test ends; closing it earlier
// (to reopen the directory, or to damage it from outside) is fine.
//
//	db := storetest.Open(t)
//	...
//	db.Close()
//	db = storetest.OpenDir(t, dir) // the same data, reopened
//
// The backend is chosen by the environment variable POSFLEET_TEST_STORE:
// badger (the default) or postgres. On postgres the store lives in a
// throwaway cluster (internal/pgtest), and a directory names a database:
// OpenDir with the same directory reopens the same data. Tests of what only
// Badger has (files on disk, the watermark, backups) call RequireBadger.
package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"testing"

	"github.com/posfleet/posfleet/internal/pgtest"
	"github.com/posfleet/posfleet/server/store"
)

// EnvBackend is the environment variable that chooses the backend.
const EnvBackend = "POSFLEET_TEST_STORE"

// Backend returns the backend the stores opened here use: "badger" or
// "postgres". It panics on any other value of POSFLEET_TEST_STORE, so that
// a typo does not quietly test Badger.
func Backend() string {
	switch b := os.Getenv(EnvBackend); b {
	case "", "badger":
		return "badger"
	case "postgres":
		return "postgres"
	default:
		panic(fmt.Sprintf("storetest: %s=%q: want badger or postgres", EnvBackend, b))
	}
}

// Postgres reports whether the stores opened here are on PostgreSQL.
func Postgres() bool { return Backend() == "postgres" }

// RequireBadger skips t when the tests run on PostgreSQL: for tests of
// what only the Badger backend has. why says what that is.
func RequireBadger(t testing.TB, why string) {
	t.Helper()
	if Postgres() {
		t.Skipf("Badger only (%s); %s=postgres", why, EnvBackend)
	}
}

// Open opens a store with store.DefaultOptions in a new temporary
// directory of t.
func Open(t testing.TB) *store.DB {
	t.Helper()
	return OpenDir(t, t.TempDir())
}

// OpenDir opens the store in dir with store.DefaultOptions.
func OpenDir(t testing.TB, dir string) *store.DB {
	t.Helper()
	return OpenWith(t, store.DefaultOptions(dir))
}

// OpenWith opens a store with opts (to set a fault hook, or turn off the
// value-log GC); the test fails at once if it cannot. On PostgreSQL,
// opts.Dir names the database and opts.CommitFault is kept; the other
// options are Badger's.
func OpenWith(t testing.TB, opts store.Options) *store.DB {
	t.Helper()
	db, err := TryOpenWith(t, opts)
	if err != nil {
		t.Fatalf("store.Open(%s): %v", opts.Dir, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TryOpenWith is OpenWith returning the error instead of failing t, and
// leaving the store to the caller to close: for tests whose own helpers
// open and close stores under engines (which must close first), and tests
// of a store that must not open.
func TryOpenWith(t testing.TB, opts store.Options) (*store.DB, error) {
	t.Helper()
	var (
		db  *store.DB
		err error
	)
	if Postgres() {
		db, err = store.OpenPostgres(t.Context(), postgresOptions(t, opts), nil)
	} else {
		db, err = store.Open(opts, nil)
	}
	if err != nil {
		return nil, err
	}
	return db, nil
}

// dirDatabase names the database standing for the directory dir.
func dirDatabase(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return "dir_" + hex.EncodeToString(sum[:10])
}

// DirURL returns the URL of the PostgreSQL database standing for the
// directory dir (the one OpenDir opens), for tests that open stores
// without storetest (a whole server). It starts the test cluster if
// needed.
func DirURL(dir string) (string, error) { return pgtest.DatabaseURL(dirDatabase(dir)) }

// postgresOptions returns the PostgreSQL options standing for opts: a
// database of its own for an in-memory store, the directory's database
// otherwise.
func postgresOptions(t testing.TB, opts store.Options) store.PostgresOptions {
	t.Helper()
	var url string
	if opts.InMemory || opts.Dir == "" {
		url = pgtest.NewDatabase(t)
	} else {
		url = pgtest.Database(t, dirDatabase(opts.Dir))
	}
	po := store.DefaultPostgresOptions(url)
	po.MaxConns = 8
	po.CommitFault = opts.CommitFault
	return po
}
