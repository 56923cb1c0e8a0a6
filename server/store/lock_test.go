package store_test

import (
	"errors"
	"testing"

	"github.com/posfleet/posfleet/server/store"
)

// A second open of a database in use is ErrInUse, never ErrCorrupt: the
// lock is taken before the watermark is read and the tables are checked,
// which a running server changes under a second reader.
func TestOpenInUse(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(store.DefaultOptions(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, readOnly := range []bool{false, true} {
		opts := store.DefaultOptions(dir)
		opts.ReadOnly = readOnly
		if _, err := store.Open(opts, nil); !errors.Is(err, store.ErrInUse) {
			t.Errorf("read-only %v: second open: got %v, want ErrInUse", readOnly, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = store.Open(store.DefaultOptions(dir), nil)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	db.Close()
}
