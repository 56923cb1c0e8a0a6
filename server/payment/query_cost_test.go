package payment_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/payment"
	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// Terminals of the sparse, old part of costLedger: store S9 of merchant M2
// and store S2 of merchant M1.
const (
	oldM2 = "T0000090"
	oldS2 = "T0000091"
)

// costLedger writes a ledger where what most queries ask for is few and
// old: 40 transactions of terminal oldM2 (merchant M2, store S9, one in
// four declined 51) and 20 of oldS2 (M1, store S2, every other declined
// 05), a minute apart; then, an hour later, bulk sales of merchant M1,
// store S1 on many terminals, one in three declined 51. It returns the time
// between the two parts.
func costLedger(t testing.TB, v *env, bulk int) time.Time {
	t.Helper()
	m2 := basePolicy(oldM2)
	m2.MerchantID, m2.StoreID = "M2", "S9"
	v.dir.set(m2)
	s2 := basePolicy(oldS2)
	s2.StoreID = "S2"
	v.dir.set(s2)
	for i := range 40 {
		r := sale(oldM2, fmt.Sprint("old-m2-", i), 100+int64(i))
		r.MerchantID = "M2"
		if i%4 == 0 {
			r.Card.Token = "tok_test_nsf"
		}
		v.authorize(r)
		if i%2 == 0 {
			r := sale(oldS2, fmt.Sprint("old-s2-", i), 200+int64(i))
			if i%4 == 0 {
				r.Card.Token = "tok_test_decline"
			}
			v.authorize(r)
		}
		v.clock.Advance(time.Minute)
	}
	v.clock.Advance(time.Hour)
	boundary := v.clock.Now()
	v.clock.Advance(time.Minute)
	fillLedger(t, v, bulk, 200)
	return boundary
}

// fillLedger authorizes n sales of merchant M1 on terminals of store S1,
// from one goroutine per terminal so that group commits gather them; one
// in three is declined with 51.
func fillLedger(t testing.TB, v *env, n, terminals int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, terminals)
	for w := range terminals {
		term := fmt.Sprintf("TB%06d", w)
		wg.Go(func() {
			for i := w; i < n; i += terminals {
				r := sale(term, fmt.Sprint("bulk-", i), 100)
				if i%3 == 0 {
					r.Card.Token = "tok_test_nsf"
				}
				if _, err := v.eng.Authorize(v.t.Context(), r); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Authorize: %v", err)
	}
}

// matches is the reference filter: what ListTransactions must return.
func matches(f payment.TxFilter, tx payment.Transaction) bool {
	return (f.TerminalID == "" || tx.TerminalID == f.TerminalID) &&
		(f.MerchantID == "" || tx.MerchantID == f.MerchantID) &&
		(f.StoreID == "" || tx.StoreID == f.StoreID) &&
		(f.ResponseCode == "" || tx.Code == f.ResponseCode) &&
		(f.Decision == payment.DecisionUnspecified || tx.Decision == f.Decision) &&
		(f.Start.IsZero() || !tx.DecisionTime.Before(f.Start)) &&
		(f.End.IsZero() || tx.DecisionTime.Before(f.End))
}

// Each filter returns exactly its matches across pages, and a page reads
// entries in proportion to its size, not to the ledger: the matches are
// few and older than thousands of other transactions.
func TestQueryCostProportionalToPage(t *testing.T) {
	const bulk, pageSize = 3000, 5
	v := newEnv(t)
	boundary := costLedger(t, v, bulk)
	all := allPages(t, v, payment.TxFilter{}, 1000)
	if len(all) != bulk+60 {
		t.Fatalf("ledger: %d transactions, want %d", len(all), bulk+60)
	}
	check := func(t *testing.T) {
		t.Helper()
		tests := []struct {
			name string
			f    payment.TxFilter
		}{
			{"store", payment.TxFilter{MerchantID: "M2", StoreID: "S9"}},
			{"store of the bulk merchant", payment.TxFilter{MerchantID: merch, StoreID: "S2"}},
			{"response code", payment.TxFilter{ResponseCode: "05"}},
			{"store and decision", payment.TxFilter{MerchantID: merch, StoreID: "S2", Decision: payment.DecisionDeclined}},
			{"merchant and response code", payment.TxFilter{MerchantID: "M2", ResponseCode: "51"}},
			{"store and response code", payment.TxFilter{MerchantID: merch, StoreID: "S2", ResponseCode: "00"}},
			{"terminal and response code", payment.TxFilter{TerminalID: oldM2, ResponseCode: "51"}},
			{"response code before a time", payment.TxFilter{ResponseCode: "51", End: boundary}},
			{"decision in a time range", payment.TxFilter{Decision: payment.DecisionApproved, Start: boundary.Add(-95 * time.Minute), End: boundary.Add(-80 * time.Minute)}},
			{"store in a time range", payment.TxFilter{MerchantID: "M2", StoreID: "S9", Start: boundary.Add(-90 * time.Minute), End: boundary.Add(-70 * time.Minute)}},
			{"time range", payment.TxFilter{Start: boundary.Add(-75 * time.Minute), End: boundary}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var want []string
				for _, tx := range all {
					if matches(tc.f, tx) {
						want = append(want, tx.ID)
					}
				}
				before := v.eng.QueryReads()
				var got []string
				pages := 0
				token := ""
				for {
					p, err := v.eng.ListTransactionsPage(t.Context(), tc.f, pageSize, token)
					if err != nil {
						t.Fatal(err)
					}
					if !p.SearchedFrom.IsZero() {
						t.Errorf("page %d stopped at the read budget (searched from %v)", pages, p.SearchedFrom)
					}
					pages++
					for _, tx := range p.Transactions {
						got = append(got, tx.ID)
					}
					if token = p.NextPageToken; token == "" {
						break
					}
				}
				if len(want) == 0 || !slices.Equal(got, want) {
					t.Fatalf("got %d transactions %v, want %d %v", len(got), got, len(want), want)
				}
				// Per page: a probe of up to 32 keys in each of at most three
				// indexes, and the page's entries plus one. The old
				// store's and merchant's indexes hold at most 40 entries
				// (read once over all pages): nothing grows with the bulk.
				read := v.eng.QueryReads() - before
				if limit := uint64(pages*(3*32+pageSize+1) + 40); read > limit {
					t.Errorf("read %d entries for %d pages of %d matches, want at most %d (the ledger holds %d)", read, pages, len(want), limit, len(all))
				}
			})
		}
	}
	t.Run("indexed as written", check)

	// As a store of the previous index generation: no store or response
	// code index, which Open builds.
	v.close()
	deleteKeys(t, v.path, "pay/xs/", "pay/xc/", "pay/xv")
	v.open()
	t.Run("indexed at Open", check)
}

// deleteKeys deletes every key with one of the prefixes from the closed
// store in path, and fails unless each prefix had keys.
func deleteKeys(t *testing.T, path string, prefixes ...string) {
	t.Helper()
	db, err := storetest.TryOpenWith(t, store.DefaultOptions(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, p := range prefixes {
		var keys [][]byte
		err := db.View(func(txn *store.Txn) error {
			return txn.IterateKeys([]byte(p), func(k []byte) error {
				keys = append(keys, slices.Clone(k))
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			t.Fatalf("no keys with prefix %q to delete", p)
		}
		for chunk := range slices.Chunk(keys, 1000) {
			err := db.Update(func(txn *store.Txn) error {
				for _, k := range chunk {
					if err := txn.Delete(k); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Store and response code filters are checked before anything is read.
func TestListTransactionsFilterValidation(t *testing.T) {
	v := newEnv(t)
	tests := []struct {
		f     payment.TxFilter
		field string
	}{
		{payment.TxFilter{StoreID: "S1"}, "store_id"},
		{payment.TxFilter{MerchantID: merch, StoreID: "S/1"}, "store_id"},
		{payment.TxFilter{ResponseCode: "99"}, "response_code"},
		{payment.TxFilter{ResponseCode: "5"}, "response_code"},
	}
	for _, tc := range tests {
		_, _, err := v.eng.ListTransactions(t.Context(), tc.f, 10, "")
		ve, ok := err.(*payment.ValidationError)
		if !ok || ve.Field != tc.field {
			t.Errorf("%+v: got %v, want a ValidationError of %s", tc.f, err, tc.field)
		}
	}
}
