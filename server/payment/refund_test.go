package payment_test

import (
	"errors"
	"testing"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/payment"
)

func TestRefunds(t *testing.T) {
	v := newEnv(t)
	saleRes := v.authorize(sale(term1, "s", 1000))
	pre := sale(term1, "p", 500)
	pre.Capture = false
	preRes := v.authorize(pre)
	revRes := v.authorize(sale(term1, "rv", 300))
	v.reverse(term1, "rv-r", "rv")
	dec := sale(term1, "d", 300)
	dec.Card.Token = "tok_test_nsf"
	decRes := v.authorize(dec)
	v.dir.update("T0000009", func(p *payment.Policy) { p.MerchantID = "M9" })
	otherSale := sale("T0000009", "o", 1000)
	otherSale.MerchantID = "M9"
	otherRes := v.authorize(otherSale)
	mustCode(t, otherRes, "00")

	type step struct {
		name          string
		terminal      string
		authID        string
		amount        int64
		currency      string
		want          string
		wantRemaining int64
	}
	steps := []step{
		{"partial refund", term1, saleRes.AuthorizationID, 400, cur, "00", 600},
		{"more than remains", term1, saleRes.AuthorizationID, 601, cur, "13", 600},
		{"foreign currency", term1, saleRes.AuthorizationID, 100, "USD", "13", 600},
		{"zero", term1, saleRes.AuthorizationID, 0, cur, "13", 600},
		{"negative", term1, saleRes.AuthorizationID, -1, cur, "13", 600},
		{"the rest", term1, saleRes.AuthorizationID, 600, cur, "00", 0},
		{"nothing left", term1, saleRes.AuthorizationID, 1, cur, "13", 0},
		{"pre-auth is not captured", term1, preRes.AuthorizationID, 100, cur, "12", 0},
		{"reversed sale", term1, revRes.AuthorizationID, 100, cur, "12", 0},
		{"declined sale", term1, decRes.AuthorizationID, 100, cur, "12", 0},
		{"unknown authorization", term1, "A00000000000FFFF", 100, cur, "12", 0},
		{"malformed authorization", term1, "NOPE", 100, cur, "12", 0},
		{"another merchant's sale", term1, otherRes.AuthorizationID, 100, cur, "12", 0},
	}
	for i, s := range steps {
		res, err := v.eng.Refund(t.Context(), payment.RefundRequest{
			TerminalID: s.terminal, RequestID: "refund-" + string(rune('a'+i)), AuthorizationID: s.authID,
			Amount: payment.Money{MinorUnits: s.amount, Currency: s.currency},
		})
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if res.ResponseCode != s.want || res.RemainingRefundable.MinorUnits != s.wantRemaining {
			t.Errorf("%s: got %s with %d remaining, want %s with %d", s.name, res.ResponseCode, res.RemainingRefundable.MinorUnits, s.want, s.wantRemaining)
		}
		if (res.Decision == payment.DecisionApproved) != (s.want == "00") || res.RefundID == "" || res.BatchNumber != 1 {
			t.Errorf("%s: got %+v, want a refund ID in batch 1", s.name, res)
		}
	}
	// A refund from another terminal of the same merchant is refused with
	// 57 unless the merchant allows refunds across its terminals; then it
	// counts in the refunding terminal's batch.
	sale2 := v.authorize(sale(term1, "s2", 800))
	r := v.refund("T0000002", "x-1", sale2.AuthorizationID, 800)
	if r.ResponseCode != "57" || r.RemainingRefundable.MinorUnits != 800 {
		t.Errorf("refund at another terminal of the merchant by default: got %s with %d remaining, want 57 with 800",
			r.ResponseCode, r.RemainingRefundable.MinorUnits)
	}
	if b := v.openBatch("T0000002").ServerTotals; b.RefundCount != 0 || b.RefundAmount != 0 {
		t.Errorf("refusing terminal's batch: got %+v, want no refund", b)
	}
	v.dir.update("T0000002", func(p *payment.Policy) { p.CrossTerminalRefunds = true })
	if r := v.refund("T0000002", "x-2", sale2.AuthorizationID, 800); r.ResponseCode != "00" {
		t.Errorf("refund at another terminal of a merchant that allows it: got %s, want 00", r.ResponseCode)
	}
	if b := v.openBatch("T0000002").ServerTotals; b.RefundCount != 1 || b.RefundAmount != 800 {
		t.Errorf("refunding terminal's batch: got %+v, want one refund of 800", b)
	}
	b := v.openBatch(term1).ServerTotals
	if b.RefundCount != 2 || b.RefundAmount != 1000 || b.SaleCount != 2 || b.SaleAmount != 1800 {
		t.Errorf("batch: got %+v, want 2 sales of 1800 and 2 refunds of 1000", b)
	}
	// The sale shows what was refunded.
	for _, tx := range v.transactions(payment.TxFilter{TerminalID: term1, Decision: payment.DecisionApproved}) {
		if tx.ID == saleRes.AuthorizationID && tx.RefundedAmount != 1000 {
			t.Errorf("sale refunded amount: got %d, want 1000", tx.RefundedAmount)
		}
		if tx.Kind == payment.TxKindRefund && tx.OriginalID == "" {
			t.Errorf("refund %s without its sale", tx.ID)
		}
	}
	// Suspended terminals cannot refund.
	v.dir.update(term1, func(p *payment.Policy) { p.Suspended = true })
	if r := v.refund(term1, "susp", sale2.AuthorizationID, 1); r.ResponseCode != "57" {
		t.Errorf("suspended terminal: got %s, want 57", r.ResponseCode)
	}
}

func TestCloseBatch(t *testing.T) {
	v := newEnv(t)
	ctx := t.Context()
	a := v.authorize(sale(term1, "a", 1000))
	v.authorize(sale(term1, "b", 250))
	v.reverse(term1, "b-rev", "b")
	v.refund(term1, "a-ref", a.AuthorizationID, 100)
	hold := sale(term1, "h", 70)
	hold.Capture = false
	v.authorize(hold)

	want := payment.BatchTotals{Currency: cur, SaleCount: 1, SaleAmount: 1000, RefundCount: 1, RefundAmount: 100,
		ReversalCount: 1, ReversalAmount: 250, PreauthCount: 1, PreauthAmount: 70}
	if _, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term1, RequestID: "c0", BatchNumber: 2}); !errors.Is(err, payment.ErrBatchMismatch) {
		t.Fatalf("wrong batch number: got %v, want ErrBatchMismatch", err)
	}
	var bm *payment.BatchMismatchError
	if _, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term1, RequestID: "c0", BatchNumber: 7}); !errors.As(err, &bm) || bm.Open != 1 || bm.Requested != 7 {
		t.Fatalf("wrong batch number: got %v, want a BatchMismatchError naming batch 1", err)
	}
	// Terminal totals match (pre-auths are not compared).
	terminal := want
	terminal.Currency, terminal.PreauthCount, terminal.PreauthAmount = "", 0, 0
	res, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term1, RequestID: "c1", BatchNumber: 1, TerminalTotals: terminal})
	if err != nil {
		t.Fatal(err)
	}
	if res.ServerTotals != want || !res.InBalance || res.BatchNumber != 1 || res.NextBatchNumber != 2 || res.Replayed {
		t.Errorf("close: got %+v, want totals %+v in balance, next batch 2", res, want)
	}
	// New transactions go to batch 2.
	if r := v.authorize(sale(term1, "c", 10)); r.BatchNumber != 2 {
		t.Errorf("after close: batch %d, want 2", r.BatchNumber)
	}
	// Replaying the close answers the same even though batch 2 is open.
	if again, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term1, RequestID: "c1", BatchNumber: 1, TerminalTotals: terminal}); err != nil || !again.Replayed || again.ServerTotals != want {
		t.Errorf("replayed close: got %+v, %v", again, err)
	}
	// Closed batches are kept as closed.
	closed, ok, err := v.eng.Batch(ctx, term1, 1)
	if err != nil || !ok || closed.State != payment.BatchStateClosed || closed.ServerTotals != want || closed.TerminalTotals.SaleAmount != 1000 {
		t.Errorf("stored batch 1: got %+v, %v, %v", closed, ok, err)
	}

	// Out of balance: the terminal counted a sale the server does not have.
	out, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term1, RequestID: "c2", BatchNumber: 2,
		TerminalTotals: payment.BatchTotals{SaleCount: 2, SaleAmount: 20}})
	if err != nil || out.InBalance || out.NextBatchNumber != 3 {
		t.Errorf("unbalanced close: got %+v, %v; want out of balance, next batch 3", out, err)
	}
	// A terminal reporting another currency does not balance.
	cb, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term1, RequestID: "c3", BatchNumber: 3,
		TerminalTotals: payment.BatchTotals{Currency: "USD"}})
	if err != nil || cb.InBalance {
		t.Errorf("close in another currency: got %+v, %v; want out of balance", cb, err)
	}
	if err := v.audit.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := v.audit.Count(audit.BatchClosed); got != 1 {
		t.Errorf("batch-closed events: got %d, want 1", got)
	}
	if got := v.audit.Count(audit.BatchOutOfBalance); got != 2 {
		t.Errorf("out-of-balance events: got %d, want 2", got)
	}
	// A terminal without transactions closes an empty batch 1.
	empty, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: "T0000005", RequestID: "c", BatchNumber: 1})
	if err != nil || !empty.InBalance || empty.ServerTotals.SaleCount != 0 || empty.NextBatchNumber != 2 {
		t.Errorf("empty close: got %+v, %v", empty, err)
	}
}
