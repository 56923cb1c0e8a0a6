package payment_test

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/payment"
)

func TestListTransactions(t *testing.T) {
	v := newEnv(t)
	ctx := t.Context()
	v.dir.update("T0000002", func(p *payment.Policy) { p.MerchantID = "M2" })
	var ids []string // in decision order
	for i := range 25 {
		term := term1
		m := merch
		if i%5 == 4 {
			term, m = "T0000002", "M2"
		}
		r := sale(term, fmt.Sprint("l-", i), int64(100+i))
		r.MerchantID = m
		if i%3 == 2 {
			r.Card.Token = "tok_test_decline"
		}
		ids = append(ids, v.authorize(r).AuthorizationID)
		v.clock.Advance(time.Minute)
	}
	if _, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term1, RequestID: "c", BatchNumber: 1}); err != nil {
		t.Fatal(err)
	}
	v.authorize(sale(term1, "after-close", 1))

	// Pages of 7, newest first, cover everything exactly once.
	var got []string
	var seqs []uint64
	token := ""
	for pages := 0; ; pages++ {
		page, next, err := v.eng.ListTransactions(ctx, payment.TxFilter{}, 7, token)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 7 {
			t.Fatalf("page size: got %d, want at most 7", len(page))
		}
		for _, tx := range page {
			got = append(got, tx.ID)
			seqs = append(seqs, tx.Sequence)
		}
		if next == "" {
			break
		}
		token = next
	}
	if len(got) != 26 {
		t.Fatalf("listed: got %d, want 26", len(got))
	}
	for i := 1; i < len(got); i++ {
		if seqs[i] != seqs[i-1]-1 {
			t.Fatalf("order: %s (sequence %d) listed after %s (sequence %d), want newest first", got[i], seqs[i], got[i-1], seqs[i-1])
		}
	}
	if got[len(got)-1] != ids[0] {
		t.Errorf("oldest: got %s, want %s", got[len(got)-1], ids[0])
	}

	tests := []struct {
		name string
		f    payment.TxFilter
		want int
	}{
		{"terminal", payment.TxFilter{TerminalID: term1}, 21},
		{"merchant", payment.TxFilter{MerchantID: "M2"}, 5},
		{"terminal and merchant disagree", payment.TxFilter{TerminalID: term1, MerchantID: "M2"}, 0},
		{"batch 1", payment.TxFilter{TerminalID: term1, BatchNumber: 1}, 20},
		{"batch 2", payment.TxFilter{TerminalID: term1, BatchNumber: 2}, 1},
		{"approved", payment.TxFilter{Decision: payment.DecisionApproved}, 18},
		{"declined", payment.TxFilter{Decision: payment.DecisionDeclined}, 8},
		{"time range", payment.TxFilter{Start: startTime.Add(5 * time.Minute), End: startTime.Add(10 * time.Minute)}, 5},
		{"from a time on", payment.TxFilter{Start: startTime.Add(20 * time.Minute)}, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			txs := v.transactions(tt.f)
			if len(txs) != tt.want {
				t.Errorf("got %d transactions, want %d", len(txs), tt.want)
			}
			for _, tx := range txs {
				if tt.f.TerminalID != "" && tx.TerminalID != tt.f.TerminalID ||
					tt.f.MerchantID != "" && tx.MerchantID != tt.f.MerchantID ||
					tt.f.Decision != 0 && tx.Decision != tt.f.Decision {
					t.Errorf("%+v does not match the filter", tx)
				}
			}
		})
	}
}

func TestSettlementReport(t *testing.T) {
	v := newEnv(t)
	ctx := t.Context()
	// Two stores of M1: one in UTC, one in UTC+14 (already the 15th there).
	v.dir.update("T0000002", func(p *payment.Policy) {
		p.StoreID = "S2"
		p.Location = time.FixedZone("UTC+14", 14*3600)
	})
	a := v.authorize(sale(term1, "a", 1000))
	v.authorize(sale(term1, "b", 200))
	v.reverse(term1, "b-r", "b")
	v.refund(term1, "a-r", a.AuthorizationID, 300)
	h := sale(term1, "h", 50)
	h.Capture = false
	v.authorize(h)
	d := sale(term1, "d", 999)
	d.Card.Token = "tok_test_decline"
	v.authorize(d)
	v.authorize(sale("T0000002", "far", 700))

	rep, err := v.eng.SettlementReport(ctx, merch, "2026-03-14")
	if err != nil {
		t.Fatal(err)
	}
	want := payment.BatchTotals{Currency: cur, SaleCount: 1, SaleAmount: 1000, RefundCount: 1, RefundAmount: 300,
		ReversalCount: 1, ReversalAmount: 200, PreauthCount: 1, PreauthAmount: 50}
	if rep.Totals != want {
		t.Errorf("totals of the 14th: got %+v, want %+v", rep.Totals, want)
	}
	if len(rep.Batches) != 1 || rep.Batches[0].TerminalID != term1 || rep.Batches[0].State != payment.BatchStateOpen {
		t.Errorf("batches of the 14th: got %+v, want the open batch of %s", rep.Batches, term1)
	}
	far, err := v.eng.SettlementReport(ctx, merch, "2026-03-15")
	if err != nil {
		t.Fatal(err)
	}
	if far.Totals.SaleCount != 1 || far.Totals.SaleAmount != 700 || len(far.Batches) != 1 || far.Batches[0].StoreID != "S2" {
		t.Errorf("report of the 15th: got %+v, want the UTC+14 store's sale", far)
	}
	// Empty: another merchant, another date.
	if none, err := v.eng.SettlementReport(ctx, "M2", "2026-03-14"); err != nil || none.Totals.SaleCount != 0 || len(none.Batches) != 0 {
		t.Errorf("merchant without transactions: got %+v, %v", none, err)
	}
	// Empty date means today in UTC.
	if today, err := v.eng.SettlementReport(ctx, merch, ""); err != nil || today.BusinessDate != "2026-03-14" || today.Totals != want {
		t.Errorf("today: got %+v, %v", today, err)
	}
}

// A page of a merchant's transactions costs about what the same page of
// the whole ledger costs, whatever the number of terminals: each terminal
// used to contribute page_size+1 decoded transactions, all held until the
// final sort (20 terminals: about 7 times the allocations).
func TestMerchantPageMemoryIsBoundedByPageSize(t *testing.T) {
	v := newEnv(t)
	const terms, perTerm, page = 20, 1001, 1000
	var wg sync.WaitGroup
	for i := range terms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("T%07d", i+1)
			for j := range perTerm {
				v.authorize(sale(id, fmt.Sprintf("r-%d-%d", i, j), 100))
			}
		}()
	}
	wg.Wait()
	alloc := func(f payment.TxFilter) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		txs, _, err := v.eng.ListTransactions(t.Context(), f, page, "")
		runtime.ReadMemStats(&after)
		if err != nil || len(txs) != page {
			t.Fatalf("ListTransactions(%+v): %d, %v", f, len(txs), err)
		}
		return after.TotalAlloc - before.TotalAlloc
	}
	all, byMerchant := alloc(payment.TxFilter{}), alloc(payment.TxFilter{MerchantID: merch})
	if byMerchant > 4*all {
		t.Errorf("a page of %d: %d KiB through the merchant filter, %d KiB unfiltered (%.1fx)", page, byMerchant>>10, all>>10, float64(byMerchant)/float64(all))
	}
}

// A settlement report of many batches is read in pages of batches: every
// batch exactly once, in order, and the totals of the whole date on every
// page.
func TestSettlementReportPages(t *testing.T) {
	v := newEnv(t)
	ctx := t.Context()
	const batches = 25
	for i := range batches {
		v.authorize(sale(term1, fmt.Sprintf("s%d", i), int64(100+i)))
		if i < batches-1 {
			if _, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term1, RequestID: fmt.Sprintf("c%d", i), BatchNumber: uint64(i + 1)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	whole, err := v.eng.SettlementReport(ctx, merch, "2026-03-14")
	if err != nil {
		t.Fatal(err)
	}
	if len(whole.Batches) != batches || whole.Totals.SaleCount != batches {
		t.Fatalf("whole report: %d batches, %d sales; want %d of each", len(whole.Batches), whole.Totals.SaleCount, batches)
	}
	var got []uint64
	tok := ""
	pages := 0
	for {
		rep, next, err := v.eng.SettlementReportPage(ctx, merch, "2026-03-14", 4, tok)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if rep.Totals != whole.Totals {
			t.Errorf("page %d totals: got %+v, want %+v", pages, rep.Totals, whole.Totals)
		}
		if len(rep.Batches) > 4 {
			t.Errorf("page %d has %d batches, want at most 4", pages, len(rep.Batches))
		}
		for _, b := range rep.Batches {
			got = append(got, b.Number)
		}
		if tok = next; tok == "" {
			break
		}
	}
	if pages != 7 || len(got) != batches {
		t.Fatalf("paged %d batches in %d pages, want %d in 7", len(got), pages, batches)
	}
	for i, n := range got {
		if n != uint64(i+1) {
			t.Fatalf("batch %d of the pages is #%d, want #%d (each once, in order)", i, n, i+1)
		}
	}
	if _, _, err := v.eng.SettlementReportPage(ctx, merch, "2026-03-14", 4, "garbage"); !errors.As(err, new(*payment.ValidationError)) {
		t.Errorf("bad page token: got %v, want a ValidationError", err)
	}
}
