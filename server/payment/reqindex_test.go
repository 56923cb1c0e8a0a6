package payment_test

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/payment"
	"github.com/posfleet/posfleet/server/store"
)

// Entries dropped from memory early are found on disk through their
// request index, without scanning the terminal's ledger, before and after
// a restart.
func TestEvictedEntriesUsePointLookups(t *testing.T) {
	v := newEnv(t, func(o *payment.Options) { o.MaxEntries = 4 })
	ctx := t.Context()
	const n = 20
	first := make([]payment.AuthorizeResult, n)
	for i := range first {
		first[i] = v.authorize(sale(term1, fmt.Sprint("a-", i), int64(100+i)))
		v.clock.Advance(time.Second)
	}
	ref := v.refund(term1, "rf-0", first[1].AuthorizationID, 50)
	for i := 0; i < 8; i++ {
		v.authorize(sale(term1, fmt.Sprint("filler-", i), 1))
		v.clock.Advance(time.Second)
	}
	if err := v.eng.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		for i, want := range first {
			got := v.authorize(sale(term1, fmt.Sprint("a-", i), int64(100+i)))
			if !got.Replayed || got.AuthorizationID != want.AuthorizationID || got.AuthCode != want.AuthCode {
				t.Fatalf("%s: replay %d: got %+v, want %+v replayed", when, i, got, want)
			}
		}
		if got := v.refund(term1, "rf-0", first[1].AuthorizationID, 50); !got.Replayed || got.RefundID != ref.RefundID {
			t.Fatalf("%s: refund replay: got %+v, want %+v replayed", when, got, ref)
		}
		// A request ID used by an evicted Authorize is a duplicate for a
		// different request.
		if got := v.authorize(sale(term1, "a-2", 999)); got.ResponseCode != payment.CodeDuplicateTransmission {
			t.Fatalf("%s: reused request ID: got %s, want 94", when, got.ResponseCode)
		}
		// New request IDs miss everywhere.
		for i := 0; i < 10; i++ {
			if got := v.authorize(sale(term1, fmt.Sprint(when, "-new-", i), 7)); got.Replayed || got.ResponseCode != payment.CodeApproved {
				t.Fatalf("%s: new request %d: got %+v", when, i, got)
			}
		}
		if scans, err := v.eng.EntryScans(ctx); err != nil || scans != 0 {
			t.Fatalf("%s: ledger scans for idempotency lookups: got %d, %v; want 0", when, scans, err)
		}
	}
	check("running")
	v.reopen()
	check("reopened")
	if got := v.reverse(term1, "rv-0", "a-0"); got.Status != payment.ReverseStatusReversed || got.AuthorizationID != first[0].AuthorizationID {
		t.Errorf("reverse of an evicted original: got %+v", got)
	}
	// After the retention period the index records go with the entries.
	v.clock.Advance(25 * time.Hour)
	if err := v.eng.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	v.reopen()
	if got := v.authorize(sale(term1, "a-0", 100)); got.Replayed || got.ResponseCode != payment.CodeApproved {
		t.Errorf("request ID after retention: got %+v, want a fresh approval", got)
	}
}

// A store written before request indexes existed still answers replays of
// entries dropped from memory, by scanning, until they expire.
func TestEvictedEntriesWithoutRequestIndex(t *testing.T) {
	v := newEnv(t, func(o *payment.Options) { o.MaxEntries = 2 })
	ctx := t.Context()
	first := make([]payment.AuthorizeResult, 6)
	for i := range first {
		first[i] = v.authorize(sale(term1, fmt.Sprint("a-", i), int64(100+i)))
		v.clock.Advance(time.Second)
	}
	// Remove every request index, as in a store of an earlier version.
	var keys [][]byte
	err := v.db.View(func(txn *store.Txn) error {
		return txn.Iterate([]byte("pay/ri"), nil, func(k, _ []byte) error {
			keys = append(keys, bytes.Clone(k))
			return nil
		})
	})
	if err != nil || len(keys) < 2 {
		t.Fatalf("request index keys: %d, %v", len(keys), err)
	}
	v.reopen()
	if err := v.db.Update(func(txn *store.Txn) error {
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	v.reopen()
	for i, want := range first {
		got := v.authorize(sale(term1, fmt.Sprint("a-", i), int64(100+i)))
		if !got.Replayed || got.AuthorizationID != want.AuthorizationID {
			t.Fatalf("replay %d: got %+v, want %+v replayed", i, got, want)
		}
	}
	if scans, err := v.eng.EntryScans(ctx); err != nil || scans == 0 {
		t.Fatalf("ledger scans: got %d, %v; want some", scans, err)
	}
}

// expiries returns the expiry of every idempotency record, request index
// and tombstone on disk, by key.
func expiries(t *testing.T, db *store.DB) map[string]time.Time {
	t.Helper()
	got := map[string]time.Time{}
	err := db.View(func(txn *store.Txn) error {
		for _, p := range []string{"pay/rq/", "pay/ri/", "pay/ts/"} {
			err := txn.IterateExpiry([]byte(p), func(k, _ []byte, exp time.Time) error {
				got[string(k)] = exp
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Idempotency records, request indexes and tombstones expire on their own
// in the store, a while after the retention period: also those dropped
// from memory early, which housekeeping never sees expire, so none of them
// stays on disk for good. Records of an earlier version, written without an
// expiry, get one when the engine opens.
func TestIdempotencyRecordsExpireOnTheirOwn(t *testing.T) {
	v := newEnv(t, func(o *payment.Options) { o.MaxEntries = 2 })
	ctx := t.Context()
	start := time.Now()
	for i := range 6 {
		v.authorize(sale(term1, fmt.Sprint("a-", i), 100))
	}
	first := v.authorize(sale(term1, "a-first", 100))
	v.refund(term1, "rf-0", first.AuthorizationID, 10)
	v.reverse(term1, "rv-0", "a-0")
	v.reverse(term1, "rv-missing", "never-sent") // a tombstone
	if _, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term1, RequestID: "cl-0", BatchNumber: 1}); err != nil {
		t.Fatal(err)
	}
	if err := v.eng.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := v.eng.MemoryEntries(ctx); err != nil || n > 2 {
		t.Fatalf("entries in memory: %d, %v; want at most 2", n, err)
	}
	check := func(when string, want int) {
		t.Helper()
		got := expiries(t, v.db)
		if len(got) != want {
			t.Fatalf("%s: %d records, want %d: %v", when, len(got), want, got)
		}
		lo := start.Add(v.opts.Retention).Add(30 * time.Minute)
		hi := time.Now().Add(v.opts.Retention).Add(2 * time.Hour)
		for k, exp := range got {
			if exp.Before(lo) || exp.After(hi) {
				t.Errorf("%s: %s expires at %v, want within [%v, %v]", when, k, exp, lo, hi)
			}
		}
	}
	// 7 sales and a refund (request indexes), 2 reversals and a close
	// (records), 1 tombstone.
	check("running", 12)

	// As an earlier version left them: no expiry, and no record that
	// every record has one.
	old := expiries(t, v.db)
	err := v.db.Update(func(txn *store.Txn) error {
		if err := txn.Delete([]byte("pay/ttl")); err != nil {
			return err
		}
		for k := range old {
			val, err := txn.Get([]byte(k))
			if err != nil {
				return err
			}
			if err := txn.Set([]byte(k), val); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if exp := expiries(t, v.db); !exp["pay/ts/"+term1+"/never-sent"].IsZero() {
		t.Fatalf("tombstone still has an expiry: %v", exp)
	}
	v.reopen()
	check("reopened", 12)
	// The records still answer replays.
	if got := v.authorize(sale(term1, "a-1", 100)); !got.Replayed {
		t.Errorf("replay after reopen: %+v", got)
	}
	if got := v.authorize(sale(term1, "never-sent", 100)); got.ResponseCode != payment.CodeInvalidTransaction {
		t.Errorf("late original after reopen: %s, want 12", got.ResponseCode)
	}
}

// A request ID used by a Reverse and, after the retention period, by an
// Authorize: the Reverse's record stays on disk until its store expiry an
// hour later, and must not hide the Authorize's request index once the
// Authorize's entry has left memory early. It did: the replay was decided
// afresh and approved a second time, and a reversal of it found nothing.
func TestReusedRequestIDAfterRetentionIsFoundOnDisk(t *testing.T) {
	v := newEnv(t, func(o *payment.Options) { o.MaxEntries = 2 })
	ctx := t.Context()
	v.reverse(term1, "X", "never-sent")
	v.clock.Advance(24*time.Hour + time.Minute)
	if err := v.eng.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	first := v.authorize(sale(term1, "X", 100))
	if first.Replayed || first.ResponseCode != payment.CodeApproved {
		t.Fatalf("X used again after the retention period: got %+v, want a fresh approval", first)
	}
	for i := range 3 { // push X's entry out of memory
		v.clock.Advance(time.Second)
		v.authorize(sale(term1, fmt.Sprint("filler-", i), 1))
	}
	if err := v.eng.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	v.clock.Advance(time.Second)
	if again := v.authorize(sale(term1, "X", 100)); !again.Replayed || again.AuthorizationID != first.AuthorizationID {
		t.Fatalf("replay of X: got %+v, want %s replayed", again, first.AuthorizationID)
	}
	if got := v.reverse(term1, "rv-X", "X"); got.Status != payment.ReverseStatusReversed || got.AuthorizationID != first.AuthorizationID {
		t.Fatalf("reversal of X: got %+v, want %s reversed", got, first.AuthorizationID)
	}
}

// The machine's clock runs 2 hours fast, then is stepped back; the
// engine's time never goes back, so it stays ahead of the clock. The store
// counts a record's expiry from its own reading of the clock: a record
// written then must still stay on disk for as long as the engine honours
// it. It expired an hour early, so a tombstone or replay could be lost
// after a restart.
func TestRecordsOutliveRetentionAfterClockStepBack(t *testing.T) {
	var offset atomic.Int64
	offset.Store(int64(2 * time.Hour))
	v := newEnv(t, func(o *payment.Options) {
		o.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	})
	v.authorize(sale(term1, "fast", 100))
	offset.Store(0)
	res := v.authorize(sale(term1, "after-step", 100))
	v.reverse(term1, "rv-late", "late")
	exp := expiries(t, v.db)
	honoured := res.DecisionTime.Add(v.opts.Retention)
	for _, k := range []string{"pay/ri/" + term1 + "/after-step", "pay/rq/" + term1 + "/rv-late", "pay/ts/" + term1 + "/late"} {
		at, ok := exp[k]
		if !ok {
			t.Fatalf("no expiry for %s among %v", k, exp)
		}
		if at.Before(honoured) {
			t.Errorf("%s expires at %v, %v before the engine stops honouring it", k, at.UTC(), honoured.Sub(at))
		}
	}
}
