package audit_test

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// TestRecordSyncIsOnDiskWhenItReturns checks that an event written with
// RecordSync is listed, counted and readable by Tail (the webhook outbox)
// as soon as the call returns, with no Flush; and that a failed commit
// reports its error and leaves nothing behind, not even a stuck tail.
func TestRecordSyncIsOnDiskWhenItReturns(t *testing.T) {
	var fail atomic.Bool
	errFsync := errors.New("fsync failed")
	sopts := store.DefaultOptions(t.TempDir())
	sopts.CommitFault = func() error {
		if fail.Load() {
			return errFsync
		}
		return nil
	}
	db := storetest.OpenWith(t, sopts)
	log, err := audit.Open(t.Context(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	types := []audit.Type{audit.MerchantMismatch}

	cases := []struct {
		name    string
		fail    bool
		wantErr error
		want    int // mismatch events on disk afterwards
	}{
		{"commit fails", true, errFsync, 0},
		{"commit succeeds", false, nil, 1},
		{"second event", false, nil, 2},
	}
	for _, c := range cases {
		fail.Store(c.fail)
		err := log.RecordSync(audit.Event{Type: audit.MerchantMismatch, TerminalID: "T0000001", Message: c.name})
		if !errors.Is(err, c.wantErr) {
			t.Fatalf("%s: RecordSync got %v, want %v", c.name, err, c.wantErr)
		}
		// No Flush: the event must already be committed.
		evs, _, err := log.List(t.Context(), audit.Filter{Type: audit.MerchantMismatch}, 100, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := len(evs); got != c.want {
			t.Fatalf("%s: got %d events on disk when RecordSync returned, want %d", c.name, got, c.want)
		}
		if got := log.Count(audit.MerchantMismatch); got != uint64(c.want) {
			t.Errorf("%s: Count got %d, want %d", c.name, got, c.want)
		}
		if got := log.MismatchesByTerminal()["T0000001"]; got != uint64(c.want) {
			t.Errorf("%s: MismatchesByTerminal got %d, want %d", c.name, got, c.want)
		}
		// The tail moved past the event: a webhook reader sees it now.
		tail, _, err := log.Tail(t.Context(), 0, types, 100)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(tail); got != c.want {
			t.Errorf("%s: Tail got %d events, want %d", c.name, got, c.want)
		}
		if c.want > 0 && evs[0].Message != c.name {
			t.Errorf("%s: newest event is %q, want %q", c.name, evs[0].Message, c.name)
		}
	}
}
