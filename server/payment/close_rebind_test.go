package payment_test

import (
	"errors"
	"testing"

	"github.com/posfleet/posfleet/server/payment"
)

// CloseBatch after a rebind, with nothing in between: the server closes
// the batch of the old binding before it decides the close, so a close
// naming that batch fails with BATCH_MISMATCH naming the batch now open,
// as the protocol says. It used to close the old batch as if nothing had
// happened, because the server applied the rebind's close only at the
// terminal's next payment or GetOpenBatch.
func TestCloseBatchRightAfterARebindIsAMismatch(t *testing.T) {
	v := newEnv(t)
	ctx := t.Context()
	mustCode(t, v.authorize(sale(term1, "before-rebind", 1000)), "00")
	v.dir.update(term1, func(p *payment.Policy) { p.StoreID = "S2" })

	closeReq := payment.CloseBatchRequest{TerminalID: term1, RequestID: "close-old", BatchNumber: 1,
		TerminalTotals: payment.BatchTotals{Currency: cur, SaleCount: 1, SaleAmount: 1000}}
	_, err := v.eng.CloseBatch(ctx, closeReq)
	var bm *payment.BatchMismatchError
	if !errors.As(err, &bm) || bm.Requested != 1 || bm.Open != 2 {
		t.Fatalf("CloseBatch(batch 1) after a rebind: got %v, want a BatchMismatchError naming open batch 2", err)
	}
	check := func(when string) {
		old, ok, err := v.eng.Batch(ctx, term1, 1)
		if err != nil || !ok || old.State != payment.BatchStateClosed || old.StoreID != "S1" || old.ServerTotals.SaleAmount != 1000 ||
			old.TerminalTotals != (payment.BatchTotals{}) {
			t.Errorf("%s: batch 1 = %+v, %v, %v; want closed by the server in S1 with 1000, no terminal totals", when, old, ok, err)
		}
		if open := v.openBatch(term1); open.Number != 2 || open.StoreID != "S2" || open.State != payment.BatchStateOpen {
			t.Errorf("%s: open batch = %+v; want batch 2 of S2, open", when, open)
		}
	}
	check("after the refused close")
	v.reopen()
	check("after restart")

	// The refused close changes nothing when repeated, and the open batch
	// closes normally under a new request_id.
	if _, err := v.eng.CloseBatch(ctx, closeReq); !errors.As(err, &bm) || bm.Open != 2 {
		t.Errorf("repeated close of batch 1: got %v, want a BatchMismatchError naming batch 2", err)
	}
	res, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term1, RequestID: "close-new", BatchNumber: 2,
		TerminalTotals: payment.BatchTotals{Currency: cur}})
	if err != nil || res.BatchNumber != 2 || !res.InBalance || res.NextBatchNumber != 3 {
		t.Errorf("CloseBatch(batch 2) = %+v, %v; want batch 2 closed in balance, 3 next", res, err)
	}
}

// A rebind leaves an empty batch open: it takes the new binding, and a
// CloseBatch naming it closes it normally.
func TestCloseBatchOfAnEmptyBatchAfterARebind(t *testing.T) {
	v := newEnv(t)
	ctx := t.Context()
	if _, err := v.eng.OpenBatch(ctx, term1); err != nil {
		t.Fatal(err)
	}
	v.dir.update(term1, func(p *payment.Policy) { p.StoreID = "S2" })
	res, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term1, RequestID: "close-empty", BatchNumber: 1,
		TerminalTotals: payment.BatchTotals{Currency: cur}})
	if err != nil || res.BatchNumber != 1 || !res.InBalance || res.NextBatchNumber != 2 {
		t.Fatalf("CloseBatch(empty batch 1) after a rebind = %+v, %v; want it closed in balance, 2 next", res, err)
	}
	if b, ok, err := v.eng.Batch(ctx, term1, 1); err != nil || !ok || b.StoreID != "S2" {
		t.Errorf("batch 1 = %+v, %v, %v; want it closed under the new store S2", b, ok, err)
	}
}
