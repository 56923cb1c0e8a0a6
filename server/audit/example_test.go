package audit_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store"
)

// A change and its event in one synced commit, an alert queued without
// waiting on the disk, and the trail read back newest first.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "posfleet-audit-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	logger := slog.New(slog.DiscardHandler)
	db, err := store.Open(store.DefaultOptions(dir), logger)
	if err != nil {
		panic(err)
	}
	defer db.Close()
	log, err := audit.Open(ctx, db, logger)
	if err != nil {
		panic(err)
	}
	defer log.Close() // flushes what is queued

	err = log.Commit(func(tx *store.Txn) error { return tx.Set([]byte("m/MID1"), []byte("…")) },
		audit.Event{Type: audit.MerchantCreated, MerchantID: "MID1", Actor: "admin:ops"})
	if err != nil {
		panic(err)
	}
	log.Record(audit.Event{Type: audit.MerchantMismatch, TerminalID: "T1", MerchantID: "MID1"})

	if err := log.Flush(ctx); err != nil { // read our own queued writes
		panic(err)
	}
	events, next, err := log.List(ctx, audit.Filter{MerchantID: "MID1"}, 100, "")
	if err != nil {
		panic(err)
	}
	for _, e := range events {
		fmt.Println(e.Type == audit.MerchantMismatch, e.Type == audit.MerchantCreated)
	}
	fmt.Printf("last page: %v\n", next == "")
	// Output:
	// true false
	// false true
	// last page: true
}
