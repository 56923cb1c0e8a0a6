package store_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/posfleet/posfleet/server/store"
)

// Open a database, write in a synced transaction, read in a snapshot.
func Example() {
	dir, err := os.MkdirTemp("", "posfleet-store-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	db, err := store.Open(store.DefaultOptions(dir), slog.New(slog.DiscardHandler))
	if err != nil {
		panic(err)
	}
	defer db.Close()
	// The commit is on disk when Update returns.
	err = db.Update(func(tx *store.Txn) error {
		return tx.Set([]byte("m/MID1"), []byte("Kiwi Foods Ltd"))
	})
	if err != nil {
		panic(err)
	}
	err = db.View(func(tx *store.Txn) error {
		v, err := tx.Get([]byte("m/MID1"))
		if err != nil {
			return err
		}
		fmt.Println(string(v))
		_, err = tx.Get([]byte("m/MID2"))
		fmt.Println(errors.Is(err, store.ErrNotFound))
		return nil
	})
	if err != nil {
		panic(err)
	}
	// Output:
	// Kiwi Foods Ltd
	// true
}
