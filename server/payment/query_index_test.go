package payment_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/payment"
	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// ledgerForQueries makes transactions of two merchants on three terminals,
// one in five declined (insufficient funds), a minute apart.
func ledgerForQueries(t *testing.T, v *env) {
	t.Helper()
	for _, id := range []string{"T0000002", "T0000003"} {
		p := basePolicy(id)
		if id == "T0000003" {
			p.MerchantID = "M2"
		}
		v.dir.set(p)
	}
	for i := range 60 {
		term := []string{term1, "T0000002", "T0000003"}[i%3]
		r := sale(term, fmt.Sprint("q-", i), 100+int64(i))
		if term == "T0000003" {
			r.MerchantID = "M2"
		}
		if i%5 == 0 {
			r.Card.Token = "tok_test_nsf"
		}
		v.authorize(r)
		v.clock.Advance(time.Minute)
	}
}

// allPages lists every page of f, pageSize at a time.
func allPages(t *testing.T, v *env, f payment.TxFilter, pageSize int) []payment.Transaction {
	t.Helper()
	var out []payment.Transaction
	token := ""
	for range 1000 {
		page, next, err := v.eng.ListTransactions(t.Context(), f, pageSize, token)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		token = next
	}
	t.Fatal("more than 1000 pages")
	return nil
}

// Every filter served by an index returns exactly the transactions that
// match it, newest first, across pages; also on a store whose indexes are
// built at Open because an earlier version wrote none.
func TestIndexedQueries(t *testing.T) {
	v := newEnv(t)
	ledgerForQueries(t, v)
	check := func(when string) {
		t.Helper()
		all := allPages(t, v, payment.TxFilter{}, 7)
		if len(all) != 60 {
			t.Fatalf("%s: %d transactions, want 60", when, len(all))
		}
		mid := all[30].DecisionTime
		filters := []payment.TxFilter{
			{Decision: payment.DecisionDeclined},
			{Decision: payment.DecisionApproved},
			{MerchantID: merch},
			{MerchantID: "M2", Decision: payment.DecisionDeclined},
			{TerminalID: "T0000002", Decision: payment.DecisionDeclined},
			{Decision: payment.DecisionDeclined, End: mid},
			{MerchantID: merch, Start: mid.Add(-10 * time.Minute), End: mid},
			{MerchantID: merch, StoreID: "S1"},
			{ResponseCode: "51"},
			{MerchantID: "M2", ResponseCode: "00"},
		}
		for _, f := range filters {
			var want []string
			for _, tx := range all {
				if matches(f, tx) {
					want = append(want, tx.ID)
				}
			}
			var got []string
			for _, tx := range allPages(t, v, f, 3) {
				got = append(got, tx.ID)
			}
			if len(want) == 0 || !slices.Equal(got, want) {
				t.Errorf("%s: %+v: got %d transactions %v, want %d %v", when, f, len(got), got, len(want), want)
			}
		}
	}
	check("indexed as written")

	// As an earlier version left the store: no index.
	v.close()
	db := storetest.OpenDir(t, v.path)
	err := db.Update(func(txn *store.Txn) error {
		var keys [][]byte
		for _, p := range []string{"pay/xm/", "pay/xd/", "pay/xn/", "pay/xt/"} {
			if err := txn.IterateKeys([]byte(p), func(k []byte) error {
				keys = append(keys, slices.Clone(k))
				return nil
			}); err != nil {
				return err
			}
		}
		if len(keys) != 4*60 {
			t.Errorf("index keys: got %d, want %d", len(keys), 4*60)
		}
		for _, k := range append(keys, []byte("pay/xi")) {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	v.open()
	check("indexed at Open")
}

// A filter no index serves (a terminal's old batch) reads at most the read
// budget per call: a short page says how far back it searched, and its
// token goes on until every match is found.
func TestReadBudgetCutsPagesShort(t *testing.T) {
	v := newEnv(t)
	ctx := t.Context()
	for i := range 5 {
		v.authorize(sale(term1, fmt.Sprint("b1-", i), 100))
		v.clock.Advance(time.Minute)
	}
	if _, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term1, RequestID: "close-1", BatchNumber: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		v.authorize(sale(term1, fmt.Sprint("b2-", i), 100))
		v.clock.Advance(time.Minute)
	}
	v.eng.SetReadBudget(10)
	f := payment.TxFilter{TerminalID: term1, BatchNumber: 1}
	first, err := v.eng.ListTransactionsPage(ctx, f, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Transactions) != 0 || first.NextPageToken == "" || first.SearchedFrom.IsZero() {
		t.Fatalf("first page: %d transactions, token %q, searched from %v; want none, a token and a time", len(first.Transactions), first.NextPageToken, first.SearchedFrom)
	}
	got := allPages(t, v, f, 100)
	if len(got) != 5 {
		t.Fatalf("batch 1 over all pages: got %d transactions, want 5", len(got))
	}
	for _, tx := range got {
		if tx.Batch != 1 {
			t.Errorf("transaction %s of batch %d in batch 1's pages", tx.ID, tx.Batch)
		}
	}
}

// A filter served by several indexes reads the sparsest and rules out,
// from keys alone, the entries the others do not list or that name
// another terminal. Whatever the read budget cuts a page at (a ruled-out
// entry spends it as a read transaction does), the pages together hold
// exactly the matches, newest first, and a start time ends the search.
func TestProbedQueriesAcrossBudgets(t *testing.T) {
	v := newEnv(t)
	ledgerForQueries(t, v)
	all := allPages(t, v, payment.TxFilter{}, 100)
	mid := all[30].DecisionTime
	filters := []payment.TxFilter{
		{MerchantID: merch, ResponseCode: "51"},
		{MerchantID: "M2", ResponseCode: "51"},
		{MerchantID: merch, ResponseCode: "00"},
		{MerchantID: merch, Decision: payment.DecisionDeclined, ResponseCode: "51"},
		{MerchantID: merch, StoreID: "S1", ResponseCode: "51"},
		{MerchantID: merch, TerminalID: "T0000002"},
		{MerchantID: merch, TerminalID: "T0000002", Decision: payment.DecisionApproved},
		{TerminalID: term1, ResponseCode: "51"},
		{MerchantID: merch, ResponseCode: "51", Start: mid.Add(-20 * time.Minute)},
		{MerchantID: merch, ResponseCode: "51", Start: mid.Add(-20 * time.Minute), End: mid},
		{MerchantID: "M2", ResponseCode: "05"}, // no match at all
	}
	for _, budget := range []int{1, 2, 5, 1000} {
		v.eng.SetReadBudget(budget)
		for _, pageSize := range []int{1, 3, 100} {
			for _, f := range filters {
				var want, got []string
				for _, tx := range all {
					if matches(f, tx) {
						want = append(want, tx.ID)
					}
				}
				for _, tx := range allPages(t, v, f, pageSize) {
					got = append(got, tx.ID)
				}
				if !slices.Equal(got, want) {
					t.Errorf("budget %d, pages of %d, %+v: got %d transactions %v, want %d %v", budget, pageSize, f, len(got), got, len(want), want)
				}
			}
		}
	}
}
