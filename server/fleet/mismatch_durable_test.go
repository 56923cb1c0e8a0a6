package fleet_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posfleet/posfleet/internal/testclock"
	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/fleet"
	"github.com/posfleet/posfleet/server/store"
)

// TestVerifyMerchantMismatchDurableBeforeAnswer checks that a merchant
// mismatch alert (the merchant_mismatch webhook's source) is committed when
// VerifyMerchant answers, and that when it cannot be written the terminal
// gets the storage error instead of an answer, and the next repeat of the
// claim is recorded at once, counting the lost one.
func TestVerifyMerchantMismatchDurableBeforeAnswer(t *testing.T) {
	var fail atomic.Bool
	sopts := store.DefaultOptions(t.TempDir())
	sopts.CommitFault = func() error {
		if fail.Load() {
			return errors.New("fsync failed")
		}
		return nil
	}
	e := openEnvStore(t, sopts, testclock.New(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)), fleet.DefaultOptions())
	e.merchant("MID1", "s1")
	reg := e.registered("SN1", "MID1", "s1")
	tid := reg.Terminal.ID
	who := audit.Actor{Name: "terminal:" + tid}

	cases := []struct {
		name       string
		claim      string
		fail       bool
		wantErr    error
		wantEvents int    // mismatch events on disk when the call returned
		suppressed string // suppressed_repeats of the newest event
	}{
		{"recorded", "MID9", false, nil, 1, ""},
		{"commit fails", "MID8", true, store.ErrCommit, 1, ""},
		{"repeat after the failure is recorded", "MID8", false, nil, 2, "1"},
		{"repeat within the window is coalesced", "MID8", false, nil, 2, "1"},
	}
	for _, c := range cases {
		fail.Store(c.fail)
		_, matches, err := e.f.VerifyMerchant(t.Context(), tid, c.claim, who)
		fail.Store(false)
		if !errors.Is(err, c.wantErr) || matches {
			t.Fatalf("%s: VerifyMerchant(%s) got matches %v, err %v; want false, %v", c.name, c.claim, matches, err, c.wantErr)
		}
		// No Flush: only what is committed is listed.
		evs, _, err := e.audit.List(t.Context(), audit.Filter{Type: audit.MerchantMismatch}, 100, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := len(evs); got != c.wantEvents {
			t.Fatalf("%s: got %d mismatch events on disk when VerifyMerchant returned, want %d", c.name, got, c.wantEvents)
		}
		if got := e.audit.Count(audit.MerchantMismatch); got != uint64(c.wantEvents) {
			t.Errorf("%s: Count got %d, want %d", c.name, got, c.wantEvents)
		}
		newest := evs[0]
		if got := newest.Attributes["suppressed_repeats"]; got != c.suppressed {
			t.Errorf("%s: suppressed_repeats got %q, want %q", c.name, got, c.suppressed)
		}
		if c.wantErr == nil && newest.Attributes["claimed_merchant_id"] != c.claim {
			t.Errorf("%s: newest event claims %q, want %q", c.name, newest.Attributes["claimed_merchant_id"], c.claim)
		}
	}
}
