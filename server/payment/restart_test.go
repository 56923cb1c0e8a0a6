package payment_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/payment"
)

func TestRestartRebuildsState(t *testing.T) {
	v := newEnv(t)
	ctx := t.Context()
	v.dir.update(term1, func(p *payment.Policy) {
		p.DailyLimit = payment.LimitOf(5000)
		p.VelocityLimit, p.VelocityWindow = 2, time.Hour
	})
	// Daily total: 4000 approved, 500 of it reversed → 3500 used.
	mustCode(t, v.authorize(sale(term1, "d1", 3000)), "00")
	mustCode(t, v.authorize(sale(term1, "d2", 500)), "00")
	mustCode(t, v.authorize(sale(term1, "d3", 500)), "00")
	v.reverse(term1, "d3-rev", "d3")
	// Velocity: two approvals of one card.
	for i := range 2 {
		r := sale(term1, fmt.Sprint("v", i), 10)
		r.Card.Token = "tok_busy"
		mustCode(t, v.authorize(r), "00")
	}
	// A tombstone.
	v.reverse(term1, "ghost-rev", "ghost")
	// A closed batch and a new one.
	if _, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term1, RequestID: "close-1", BatchNumber: 1,
		TerminalTotals: payment.BatchTotals{SaleCount: 4, SaleAmount: 3520, ReversalCount: 1, ReversalAmount: 500}}); err != nil {
		t.Fatal(err)
	}
	last := v.authorize(sale(term1, "b2", 5))
	mustCode(t, last, "00")

	v.reopen()

	// Daily: 3525 used (the batch close does not reset the day), so 1475 is left.
	mustCode(t, v.authorize(sale(term1, "d4", 1476)), "61")
	// Velocity still counts the two approvals.
	r := sale(term1, "v2", 10)
	r.Card.Token = "tok_busy"
	mustCode(t, v.authorize(r), "65")
	// The tombstone still declines the original.
	mustCode(t, v.authorize(sale(term1, "ghost", 10)), "12")
	// The open batch is 2 with its running totals, and new IDs follow on.
	next := v.authorize(sale(term1, "d5", 1475))
	mustCode(t, next, "00")
	if next.BatchNumber != 2 {
		t.Errorf("after restart: batch %d, want 2", next.BatchNumber)
	}
	page, _, err := v.eng.ListTransactions(ctx, payment.TxFilter{TerminalID: term1}, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(page) == 0 || page[0].ID != next.AuthorizationID {
		t.Fatalf("after restart: newest transaction %+v, want %s", page[:min(len(page), 1)], next.AuthorizationID)
	}
	before := false
	for _, tx := range page[1:] {
		if tx.ID == last.AuthorizationID {
			before = tx.Sequence < page[0].Sequence
		}
	}
	if !before {
		t.Errorf("after restart: %s is not earlier in the ledger than %s", last.AuthorizationID, next.AuthorizationID)
	}
	b := v.openBatch(term1)
	if b.Number != 2 || b.ServerTotals.SaleCount != 2 || b.ServerTotals.SaleAmount != 1480 {
		t.Errorf("open batch: got %d with %+v, want 2 with 2 sales of 1480", b.Number, b.ServerTotals)
	}
	// Time moves on: the next day in the store has a fresh daily total and
	// the velocity window has passed.
	v.clock.Advance(24 * time.Hour)
	v.reopen()
	mustCode(t, v.authorize(sale(term1, "d6", 4990)), "00")
	r = sale(term1, "v3", 10)
	r.Card.Token = "tok_busy"
	mustCode(t, v.authorize(r), "00")
	// Decision times never go backwards, even if the clock does.
	v.clock.Advance(-time.Hour)
	v.reopen()
	back := v.authorize(sale(term1, "back", 1))
	txs := v.transactions(payment.TxFilter{TerminalID: term1})
	if len(txs) < 2 || back.DecisionTime.Before(txs[1].DecisionTime) {
		t.Errorf("decision time after the clock went back: got %v, before the previous %v", back.DecisionTime, txs[1].DecisionTime)
	}
}

// TestBatchTotalsRebuiltWithoutCheckpoint reopens an engine whose open
// batch records were written only when batches opened, closed or a
// reversal changed them, as after a crash: the totals come back from the
// ledger.
func TestBatchTotalsRebuiltWithoutCheckpoint(t *testing.T) {
	v := newEnv(t, payment.DisableCheckpoints)
	ctx := t.Context()
	a := v.authorize(sale(term1, "a", 1000))
	v.authorize(sale(term1, "b", 200))
	v.reverse(term1, "b-rev", "b") // writes the batch record
	v.authorize(sale(term1, "c", 300))
	v.refund(term1, "a-ref", a.AuthorizationID, 150)
	h := sale(term1, "h", 40)
	h.Capture = false
	v.authorize(h)
	v.authorize(sale(term1, "d", 60))
	v.reverse(term1, "d-rev", "d") // a reversal of a sale after the last record
	want := payment.BatchTotals{Currency: cur, SaleCount: 2, SaleAmount: 1300, RefundCount: 1, RefundAmount: 150,
		ReversalCount: 2, ReversalAmount: 260, PreauthCount: 1, PreauthAmount: 40}
	if got := v.openBatch(term1).ServerTotals; got != want {
		t.Fatalf("before reopen: got %+v, want %+v", got, want)
	}
	v.authorize(sale(term1, "e", 5))
	want.SaleCount++
	want.SaleAmount += 5
	v.reopen()
	if got := v.openBatch(term1).ServerTotals; got != want {
		t.Fatalf("after reopen: got %+v, want %+v", got, want)
	}
	res, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term1, RequestID: "close", BatchNumber: 1})
	if err != nil || res.ServerTotals != want {
		t.Fatalf("close after reopen: got %+v, %v; want totals %+v", res.ServerTotals, err, want)
	}
	v.authorize(sale(term1, "f", 7))
	v.reopen()
	if got := v.openBatch(term1); got.Number != 2 || got.ServerTotals.SaleCount != 1 || got.ServerTotals.SaleAmount != 7 {
		t.Errorf("batch 2 after reopen: got %d %+v, want one sale of 7", got.Number, got.ServerTotals)
	}
}
