package storetest_test

import (
	"errors"
	"testing"

	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// A store from OpenDir keeps its data across a reopen, and the directory
// is free again once the test that opened it has ended.
func TestOpenDirReopensAndClosesAtCleanup(t *testing.T) {
	dir := t.TempDir()
	t.Run("write", func(t *testing.T) {
		db := storetest.OpenDir(t, dir)
		if err := db.Update(func(tx *store.Txn) error { return tx.Set([]byte("k"), []byte("v")) }); err != nil {
			t.Fatal(err)
		}
		if storetest.Postgres() {
			return // a database, not a directory: no lock to hold
		}
		if _, err := store.Open(store.DefaultOptions(dir), nil); !errors.Is(err, store.ErrInUse) {
			t.Fatalf("second open while the first is open: got %v, want ErrInUse", err)
		}
	})
	// The subtest's cleanup closed the store: it opens again.
	db := storetest.OpenDir(t, dir)
	var got string
	err := db.View(func(tx *store.Txn) error {
		v, err := tx.Get([]byte("k"))
		got = string(v)
		return err
	})
	if err != nil || got != "v" {
		t.Fatalf("after reopen: got %q, %v; want v", got, err)
	}
	// Another directory is another, empty store.
	if _, err := storetest.Open(t).Get([]byte("k")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(k) in a new store: got %v, want ErrNotFound", err)
	}
}
