package audit_test

import (
	"context"
	"errors"
	"testing"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// Open reads the whole trail; a cancelled context stops it.
func TestOpenHonoursContext(t *testing.T) {
	db := storetest.Open(t)
	log, err := audit.Open(t.Context(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	log.Record(audit.Event{Type: audit.MerchantCreated, Actor: "admin:test", MerchantID: "M1"})
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := audit.Open(ctx, db, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v from Open with a cancelled context, want context.Canceled", err)
	}
	log, err = audit.Open(t.Context(), db, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if n := log.Count(audit.MerchantCreated); n != 1 {
		t.Errorf("got %d merchant-created events after reopen, want 1", n)
	}
	log.Close()
}
