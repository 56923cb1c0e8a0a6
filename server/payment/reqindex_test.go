package payment_test

import (
	"bytes"
	"fmt"
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
