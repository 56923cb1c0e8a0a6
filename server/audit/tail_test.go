package audit_test

import (
	"testing"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// TestTailWaitsForEarlierIDs: an event committed after a later-numbered one
// is not skipped by a reader following the log in ID order.
func TestTailWaitsForEarlierIDs(t *testing.T) {
	db := storetest.Open(t)
	log, err := audit.Open(t.Context(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	types := []audit.Type{audit.MerchantMismatch, audit.BatchOutOfBalance}
	start := log.Watermark() - 1

	// An event prepared (its ID handed out) but not yet committed...
	early := log.Prepare([]audit.Event{{Type: audit.MerchantMismatch, Message: "early"}})
	// ...then a later one committed at once, and one of a type not asked for.
	nop := func(*store.Txn) error { return nil }
	if err := log.Commit(nop, audit.Event{Type: audit.BatchOutOfBalance, Message: "late"}, audit.Event{Type: audit.StoreCreated}); err != nil {
		t.Fatal(err)
	}
	settled := log.Settled()
	evs, upto, err := log.Tail(t.Context(), start, types, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 0 || upto != start {
		t.Fatalf("Tail while an earlier ID is pending: got %d events up to %d, want none up to %d", len(evs), upto, start)
	}

	if err := db.Update(func(tx *store.Txn) error { return log.Stage(tx, early) }); err != nil {
		t.Fatal(err)
	}
	log.Committed(early)
	select {
	case <-settled:
	default:
		t.Fatal("Settled channel not closed after a commit")
	}
	evs, upto, err = log.Tail(t.Context(), start, types, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Message)
	}
	if len(got) != 2 || got[0] != "early" || got[1] != "late" {
		t.Fatalf("Tail after commit: got %q, want [early late]", got)
	}
	if upto != log.Watermark()-1 {
		t.Fatalf("Tail read up to %d, want %d (everything settled)", upto, log.Watermark()-1)
	}
	// Limit: one at a time, resuming where the last call stopped.
	first, upto1, err := log.Tail(t.Context(), start, types, 1)
	if err != nil || len(first) != 1 || first[0].Message != "early" || upto1 != first[0].ID {
		t.Fatalf("Tail limit 1: got %v up to %d, err %v; want early up to its ID", first, upto1, err)
	}
	second, _, err := log.Tail(t.Context(), upto1, types, 1)
	if err != nil || len(second) != 1 || second[0].Message != "late" {
		t.Fatalf("Tail resumed: got %v, err %v; want late", second, err)
	}

	// An abandoned event settles too.
	lost := log.Prepare([]audit.Event{{Type: audit.MerchantMismatch}})
	if w := log.Watermark(); w != lost[0].ID {
		t.Fatalf("watermark with a prepared event: got %d, want %d", w, lost[0].ID)
	}
	log.Abandon(lost)
	if w := log.Watermark(); w <= lost[0].ID {
		t.Fatalf("watermark after abandon: got %d, want above %d", w, lost[0].ID)
	}
}

// TestWatermarkSettlesOutOfOrder: the watermark is the lowest unsettled ID
// whatever order the events settle in.
func TestWatermarkSettlesOutOfOrder(t *testing.T) {
	db := storetest.Open(t)
	log, err := audit.Open(t.Context(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	a := log.Prepare([]audit.Event{{Type: audit.DiskLow}})
	b := log.Prepare([]audit.Event{{Type: audit.DiskLow}})
	c := log.Prepare([]audit.Event{{Type: audit.DiskLow}})
	for _, step := range []struct {
		settle []audit.Event
		want   uint64
	}{
		{b, a[0].ID},
		{a, c[0].ID},
		{c, c[0].ID + 1},
	} {
		log.Abandon(step.settle)
		if got := log.Watermark(); got != step.want {
			t.Fatalf("after settling %d: watermark %d, want %d", step.settle[0].ID, got, step.want)
		}
	}
}
