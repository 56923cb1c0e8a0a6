package audit_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// openLog opens an audit trail on a new store, both closed after the test.
func openLog(t testing.TB) *audit.Log {
	t.Helper()
	db := storetest.Open(t)
	log, err := audit.Open(t.Context(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	return log
}

// Prune hands the events past retention to the export, then deletes them
// with their index entries; a failed export deletes nothing.
func TestPruneExportsThenDeletes(t *testing.T) {
	log := openLog(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1200 {
		typ := audit.BatchClosed
		if i%100 == 0 {
			typ = audit.MerchantMismatch
		}
		log.Record(audit.Event{Type: typ, TerminalID: fmt.Sprintf("T%07d", i%3), MerchantID: "M1", Time: base.Add(time.Duration(i) * time.Minute), Message: fmt.Sprint(i)})
	}
	if err := log.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	cut := base.Add(1000 * time.Minute) // events 0-999 are older

	failing := func([]audit.Event) error { return errors.New("disk full") }
	if n, err := log.Prune(t.Context(), cut, failing); err == nil || n != 0 {
		t.Fatalf("prune with a failing export: %d pruned, err %v; want none and the error", n, err)
	}
	if got := log.Count(audit.BatchClosed); got != 1188 {
		t.Fatalf("after a failed prune Count(BatchClosed) = %d, want 1188", got)
	}

	var exported []audit.Event
	n, err := log.Prune(t.Context(), cut, func(evs []audit.Event) error {
		exported = append(exported, evs...)
		return nil
	})
	if err != nil || n != 1000 {
		t.Fatalf("prune: %d pruned, err %v; want 1000", n, err)
	}
	if len(exported) != 1000 || exported[0].Message != "0" || exported[999].Message != "999" {
		t.Fatalf("exported %d events, first %q, last %q; want 0 to 999 in order", len(exported), exported[0].Message, exported[len(exported)-1].Message)
	}
	for _, f := range []audit.Filter{{}, {TerminalID: "T0000001"}, {MerchantID: "M1"}, {Type: audit.BatchClosed}} {
		evs, _, err := log.List(t.Context(), f, 1000, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Time.Before(cut) {
				t.Fatalf("list %+v after prune holds event %s of %v", f, e.Message, e.Time)
			}
		}
	}
	if got, want := log.Count(audit.MerchantMismatch), uint64(2); got != want {
		t.Errorf("Count(MerchantMismatch) after prune = %d, want %d", got, want)
	}
	if got := log.Count(audit.BatchClosed); got != 198 {
		t.Errorf("Count(BatchClosed) after prune = %d, want 198", got)
	}
}
