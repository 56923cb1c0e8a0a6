// Package storetest opens real stores for tests: in a new temporary
// directory, or in one the test names so that it can close and reopen it.
// Every store opened here is closed when the test ends; closing it earlier
// (to reopen the directory, or to damage it from outside) is fine.
//
//	db := storetest.Open(t)
//	...
//	db.Close()
//	db = storetest.OpenDir(t, dir) // the same data, reopened
package storetest

import (
	"testing"

	"github.com/posfleet/posfleet/server/store"
)

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
// value-log GC); the test fails at once if it cannot.
func OpenWith(t testing.TB, opts store.Options) *store.DB {
	t.Helper()
	db, err := store.Open(opts, nil)
	if err != nil {
		t.Fatalf("store.Open(%s): %v", opts.Dir, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
