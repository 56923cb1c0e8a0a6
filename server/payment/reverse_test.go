package payment_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/payment"
)

// TestReversalMatrix runs every order of an original and its reversals and
// checks that each ends with no live approval, that the reversal took
// effect at most once, and that the batch counts it exactly so.
func TestReversalMatrix(t *testing.T) {
	v := newEnv(t)
	type step struct {
		op   string // "auth", "rev" (reversal with ID id), "reopen"
		id   string
		want string // response code, or reverse status
	}
	const (
		reversed = "REVERSED"
		already  = "ALREADY_REVERSED"
		notFound = "ORIGINAL_NOT_FOUND"
		notRev   = "NOT_REVERSIBLE"
	)
	tests := []struct {
		name  string
		steps []step
		// reversedSales is how many approvals the batch must count as reversed.
		reversedSales uint64
	}{
		{"reverse after original", []step{{"auth", "", "00"}, {"rev", "r1", reversed}}, 1},
		{"reverse before original", []step{{"rev", "r1", notFound}, {"auth", "", "12"}}, 0},
		{"reverse without original", []step{{"rev", "r1", notFound}}, 0},
		{"reverse twice after", []step{{"auth", "", "00"}, {"rev", "r1", reversed}, {"rev", "r2", already}}, 1},
		{"reverse twice before", []step{{"rev", "r1", notFound}, {"rev", "r2", notFound}, {"auth", "", "12"}}, 0},
		{"reversal replayed", []step{{"auth", "", "00"}, {"rev", "r1", reversed}, {"rev", "r1", reversed}}, 1},
		{"reverse before, original, reverse again", []step{{"rev", "r1", notFound}, {"auth", "", "12"}, {"rev", "r2", notRev}}, 0},
		{"original replayed after reversal", []step{{"auth", "", "00"}, {"rev", "r1", reversed}, {"auth", "", "00"}}, 1},
		{"across restart: reverse before", []step{{"rev", "r1", notFound}, {"reopen", "", ""}, {"auth", "", "12"}}, 0},
		{"across restart: reverse after", []step{{"auth", "", "00"}, {"reopen", "", ""}, {"rev", "r1", reversed}, {"reopen", "", ""}, {"rev", "r2", already}}, 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			term := fmt.Sprintf("TR%06d", i)
			orig := "orig"
			var authID string
			for _, s := range tt.steps {
				switch s.op {
				case "auth":
					res := v.authorize(sale(term, orig, 1000))
					if res.ResponseCode != s.want {
						t.Fatalf("authorize: got %s, want %s", res.ResponseCode, s.want)
					}
					authID = res.AuthorizationID
				case "rev":
					res := v.reverse(term, s.id, orig)
					if got := statusName(res.Status); got != s.want {
						t.Fatalf("reverse %s: got %s, want %s", s.id, got, s.want)
					}
					if res.Status == payment.ReverseStatusReversed && (res.ReversedAmount != payment.Money{MinorUnits: 1000, Currency: cur}) {
						t.Errorf("reversed amount: got %+v, want 1000 %s", res.ReversedAmount, cur)
					}
					if res.Status != payment.ReverseStatusOriginalNotFound && res.AuthorizationID != authID {
						t.Errorf("reverse %s: authorization %q, want %q", s.id, res.AuthorizationID, authID)
					}
				case "reopen":
					v.reopen()
				}
			}
			live := 0
			for _, tx := range v.transactions(payment.TxFilter{TerminalID: term}) {
				if tx.Decision == payment.DecisionApproved && !tx.Reversed {
					live++
				}
			}
			if live != 0 {
				t.Errorf("live approvals at the end: got %d, want 0", live)
			}
			if tt.reversedSales > 0 || len(v.transactions(payment.TxFilter{TerminalID: term})) > 0 {
				b := v.openBatch(term).ServerTotals
				if b.ReversalCount != tt.reversedSales || b.ReversalAmount != int64(tt.reversedSales)*1000 || b.SaleCount != 0 || b.SaleAmount != 0 {
					t.Errorf("batch: got %+v, want %d reversal(s) and no live sale", b, tt.reversedSales)
				}
			}
		})
	}
}

func statusName(s payment.ReverseStatus) string {
	switch s {
	case payment.ReverseStatusReversed:
		return "REVERSED"
	case payment.ReverseStatusAlreadyReversed:
		return "ALREADY_REVERSED"
	case payment.ReverseStatusOriginalNotFound:
		return "ORIGINAL_NOT_FOUND"
	case payment.ReverseStatusNotReversible:
		return "NOT_REVERSIBLE"
	}
	return fmt.Sprint("status ", int(s))
}

// TestReversalRace sends originals and their reversals at the same moment
// from different goroutines: whichever wins, no approval stays live and
// each original is reversed at most once.
func TestReversalRace(t *testing.T) {
	v := newEnv(t)
	const n = 200
	var wg sync.WaitGroup
	auths := make([]payment.AuthorizeResult, n)
	revs := make([][2]payment.ReverseResult, n)
	for i := range n {
		orig := fmt.Sprint("o-", i)
		wg.Go(func() { auths[i] = v.authorize(sale(term1, orig, 10)) })
		wg.Go(func() { revs[i][0] = v.reverse(term1, fmt.Sprint("ra-", i), orig) })
		wg.Go(func() { revs[i][1] = v.reverse(term1, fmt.Sprint("rb-", i), orig) })
	}
	wg.Wait()
	var reversedCount uint64
	for i := range n {
		a, r := auths[i], revs[i]
		nReversed := 0
		for _, x := range r {
			if x.Status == payment.ReverseStatusReversed {
				nReversed++
			}
		}
		reversedCount += uint64(nReversed)
		switch a.ResponseCode {
		case "00":
			// Approved first: exactly one reversal took it back.
			if nReversed != 1 {
				t.Errorf("original %d approved: reversals %v, %v; want exactly one REVERSED", i, statusName(r[0].Status), statusName(r[1].Status))
			}
		case "12":
			// A reversal came first and left a tombstone.
			if nReversed != 0 {
				t.Errorf("original %d declined: reversals %v, %v; want none REVERSED", i, statusName(r[0].Status), statusName(r[1].Status))
			}
		default:
			t.Errorf("original %d: got %s, want 00 or 12", i, a.ResponseCode)
		}
	}
	for _, tx := range v.transactions(payment.TxFilter{TerminalID: term1}) {
		if tx.Decision == payment.DecisionApproved && !tx.Reversed {
			t.Errorf("live approval left: %s (%s)", tx.ID, tx.RequestID)
		}
	}
	b := v.openBatch(term1).ServerTotals
	if b.SaleCount != 0 || b.ReversalCount != reversedCount || b.ReversalAmount != int64(reversedCount)*10 {
		t.Errorf("batch: got %+v, want no sales and %d reversals", b, reversedCount)
	}
}

func TestNotReversible(t *testing.T) {
	v := newEnv(t)
	ctx := t.Context()
	// Declined original.
	d := sale(term1, "declined", 100)
	d.Card.Token = "tok_test_decline"
	mustCode(t, v.authorize(d), "05")
	if got := v.reverse(term1, "r-declined", "declined").Status; got != payment.ReverseStatusNotReversible {
		t.Errorf("declined original: got %s, want NOT_REVERSIBLE", statusName(got))
	}
	// Refunded original.
	a := v.authorize(sale(term1, "refunded", 100))
	if r := v.refund(term1, "rf", a.AuthorizationID, 40); r.ResponseCode != "00" {
		t.Fatalf("refund: got %s", r.ResponseCode)
	}
	if got := v.reverse(term1, "r-refunded", "refunded").Status; got != payment.ReverseStatusNotReversible {
		t.Errorf("refunded original: got %s, want NOT_REVERSIBLE", statusName(got))
	}
	// Original in a closed batch.
	mustCode(t, v.authorize(sale(term1, "settled", 100)), "00")
	if _, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term1, RequestID: "close", BatchNumber: 1}); err != nil {
		t.Fatal(err)
	}
	if got := v.reverse(term1, "r-settled", "settled").Status; got != payment.ReverseStatusNotReversible {
		t.Errorf("original of a closed batch: got %s, want NOT_REVERSIBLE", statusName(got))
	}
	// A refund is not an authorization.
	if got := v.reverse(term1, "r-refund", "rf").Status; got != payment.ReverseStatusNotReversible {
		t.Errorf("reversal of a refund: got %s, want NOT_REVERSIBLE", statusName(got))
	}
	// Pre-auths are reversible and leave the pre-auth totals.
	p := sale(term1, "hold", 300)
	p.Capture = false
	mustCode(t, v.authorize(p), "00")
	if b := v.openBatch(term1).ServerTotals; b.PreauthCount != 1 || b.PreauthAmount != 300 {
		t.Fatalf("pre-auth totals: got %+v, want 1 of 300", b)
	}
	if got := v.reverse(term1, "r-hold", "hold").Status; got != payment.ReverseStatusReversed {
		t.Errorf("pre-auth: got %s, want REVERSED", statusName(got))
	}
	if b := v.openBatch(term1).ServerTotals; b.PreauthCount != 0 || b.ReversalCount != 1 || b.ReversalAmount != 300 {
		t.Errorf("totals after reversing the pre-auth: got %+v, want no hold and one reversal of 300", b)
	}
}

// TestReverseAndRefundFromDisk reverses and refunds transactions that have
// left memory (older than TxCacheTTL): they are read back from disk and
// the result is the same as from memory.
func TestReverseAndRefundFromDisk(t *testing.T) {
	v := newEnv(t)
	ctx := t.Context()
	a := v.authorize(sale(term1, "old-sale", 900))
	v.authorize(sale(term1, "old-rev", 400))
	v.clock.Advance(payment.DefaultOptions().TxCacheTTL + time.Minute)
	if n, err := v.eng.MemoryTransactions(ctx); err != nil || n != 0 {
		t.Fatalf("transactions in memory after TxCacheTTL: got %d, %v; want 0", n, err)
	}
	if r := v.refund(term1, "rf-1", a.AuthorizationID, 300); r.ResponseCode != "00" || r.RemainingRefundable.MinorUnits != 600 {
		t.Fatalf("refund of a sale read from disk: got %+v, want 00 with 600 left", r)
	}
	if r := v.refund(term1, "rf-2", a.AuthorizationID, 601); r.ResponseCode != "13" {
		t.Errorf("second refund beyond the rest: got %s, want 13", r.ResponseCode)
	}
	if r := v.reverse(term1, "rv-1", "old-rev"); r.Status != payment.ReverseStatusReversed || r.ReversedAmount.MinorUnits != 400 {
		t.Fatalf("reversal of an original read from disk: got %+v, want REVERSED 400", r)
	}
	if r := v.reverse(term1, "rv-2", "old-rev"); r.Status != payment.ReverseStatusAlreadyReversed {
		t.Errorf("second reversal: got %s, want ALREADY_REVERSED", statusName(r.Status))
	}
	b := v.openBatch(term1).ServerTotals
	if b.SaleAmount != 900 || b.RefundAmount != 300 || b.ReversalAmount != 400 {
		t.Errorf("batch: got %+v, want a 900 sale, a 300 refund and a 400 reversal", b)
	}
}
