package payment_test

import (
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/payment"
)

// workload drives random traffic from many goroutines and records every
// answer, so that tests can check the ledger, batches and settlement
// against what terminals were told.
type workload struct {
	v        *env
	terms    []string
	workers  int
	opsEach  int
	tokens   int // card tokens per terminal
	closeOne bool
	// captures, when set, also captures approved pre-auths (and retries
	// some captures).
	captures bool
	// tick, when set, runs every that many operations of worker 0 (e.g. to
	// move the clock across business dates).
	tick  func()
	every int

	mu sync.Mutex // guards everything below
	// auths holds the first answer per terminal and request ID.
	auths map[[2]string]authRecord
	// reversed counts REVERSED answers per authorization ID; revAmount sums
	// their amounts.
	reversed  map[string]int
	revAmount int64
	// refunds sums approved refund answers per sale.
	refunds     map[string]int64
	refundTotal int64
	// closes counts successful batch closes.
	closes int
	// captured sums approved capture answers per pre-auth; captureCount
	// counts them (never more than one).
	captured     map[string]int64
	captureCount map[string]int
}

type authRecord struct {
	req payment.AuthorizeRequest
	res payment.AuthorizeResult
}

func (w *workload) run(t *testing.T) {
	w.auths = map[[2]string]authRecord{}
	w.reversed = map[string]int{}
	w.refunds = map[string]int64{}
	w.captured = map[string]int64{}
	w.captureCount = map[string]int{}
	var wg sync.WaitGroup
	for wi := range w.workers {
		wg.Go(func() { w.worker(t, wi) })
	}
	wg.Wait()
}

func (w *workload) worker(t *testing.T, wi int) {
	ctx := t.Context()
	rng := mrand.New(mrand.NewPCG(uint64(wi), 42))
	var mine []authRecord // this worker's authorizations, for replays
	var approvedSales []payment.AuthorizeResult
	var approvedPreauths []authRecord
	var lastCapture *payment.CaptureRequest
	var lastCaptureRes payment.CaptureResult
	seq := 0
	newReq := func(term string) payment.AuthorizeRequest {
		seq++
		r := sale(term, fmt.Sprintf("w%d-%d", wi, seq), 1+rng.Int64N(2500))
		r.Card.Token = fmt.Sprintf("tok_%s_%d", term, rng.IntN(w.tokens))
		r.Capture = rng.IntN(5) != 0
		return r
	}
	authorize := func(req payment.AuthorizeRequest) {
		res, err := w.v.eng.Authorize(ctx, req)
		if err != nil {
			t.Errorf("Authorize %s: %v", req.RequestID, err)
			return
		}
		key := [2]string{req.TerminalID, req.RequestID}
		w.mu.Lock()
		first, seen := w.auths[key]
		if !seen {
			w.auths[key] = authRecord{req, res}
		}
		w.mu.Unlock()
		switch {
		case seen && !res.Replayed:
			t.Errorf("%s decided twice: %+v then %+v", req.RequestID, first.res, res)
		case seen:
			first.res.Replayed = true
			if res != first.res {
				t.Errorf("%s replay: got %+v, want %+v", req.RequestID, res, first.res)
			}
		case res.Replayed:
			t.Errorf("%s: first answer marked replayed", req.RequestID)
		}
		if !seen {
			mine = append(mine, authRecord{req, res})
			switch {
			case res.Decision != payment.DecisionApproved:
			case req.Capture:
				approvedSales = append(approvedSales, res)
			default:
				approvedPreauths = append(approvedPreauths, authRecord{req, res})
			}
		}
	}
	reverse := func(term, original string) {
		seq++
		res, err := w.v.eng.Reverse(ctx, payment.ReverseRequest{TerminalID: term, RequestID: fmt.Sprintf("w%d-r%d", wi, seq),
			OriginalRequestID: original, Reason: payment.ReversalReasonTimeout})
		if err != nil {
			t.Errorf("Reverse: %v", err)
			return
		}
		if res.Status == payment.ReverseStatusReversed {
			w.mu.Lock()
			w.reversed[res.AuthorizationID]++
			w.revAmount += res.ReversedAmount.MinorUnits
			w.mu.Unlock()
		}
	}
	for i := range w.opsEach {
		if wi == 0 && w.tick != nil && i%w.every == 0 {
			w.tick()
		}
		term := w.terms[rng.IntN(len(w.terms))]
		switch p := rng.IntN(100); {
		case p < 55:
			authorize(newReq(term))
		case p < 65 && len(mine) > 0: // a retry of an earlier request
			authorize(mine[rng.IntN(len(mine))].req)
		case p < 75 && len(mine) > 0: // reversal of an earlier request
			r := mine[rng.IntN(len(mine))].req
			reverse(r.TerminalID, r.RequestID)
		case p < 82: // reversal racing ahead of its original
			req := newReq(term)
			reverse(term, req.RequestID)
			authorize(req)
		case w.captures && p < 90 && lastCapture != nil && rng.IntN(3) == 0: // a retried capture
			res, err := w.v.eng.Capture(ctx, *lastCapture)
			want := lastCaptureRes
			want.Replayed = true
			if err != nil || res != want {
				t.Errorf("capture %s again: got %+v, %v; want %+v", lastCapture.RequestID, res, err, want)
			}
		case w.captures && p < 90 && len(approvedPreauths) > 0:
			pre := approvedPreauths[rng.IntN(len(approvedPreauths))]
			seq++
			req := payment.CaptureRequest{TerminalID: pre.req.TerminalID, RequestID: fmt.Sprintf("w%d-k%d", wi, seq),
				AuthorizationID: pre.res.AuthorizationID, Amount: payment.Money{MinorUnits: 1 + rng.Int64N(2000), Currency: cur}}
			res, err := w.v.eng.Capture(ctx, req)
			if err != nil {
				t.Errorf("Capture: %v", err)
				continue
			}
			lastCapture, lastCaptureRes = &req, res
			if res.Decision == payment.DecisionApproved {
				w.mu.Lock()
				w.captured[pre.res.AuthorizationID] += req.Amount.MinorUnits
				w.captureCount[pre.res.AuthorizationID]++
				w.mu.Unlock()
			}
		case p < 97 && len(approvedSales) > 0:
			s := approvedSales[rng.IntN(len(approvedSales))]
			seq++
			amount := 1 + rng.Int64N(800)
			res, err := w.v.eng.Refund(ctx, payment.RefundRequest{
				TerminalID: term, RequestID: fmt.Sprintf("w%d-f%d", wi, seq), AuthorizationID: s.AuthorizationID,
				Amount: payment.Money{MinorUnits: amount, Currency: cur},
			})
			if err != nil {
				t.Errorf("Refund: %v", err)
			} else if res.Decision == payment.DecisionApproved {
				w.mu.Lock()
				w.refunds[s.AuthorizationID] += amount
				w.refundTotal += amount
				w.mu.Unlock()
			}
		case p < 98 && w.closeOne:
			b, _, err := w.v.eng.Batch(ctx, term, 0)
			if err != nil {
				t.Errorf("Batch: %v", err)
				continue
			}
			seq++
			_, err = w.v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term, RequestID: fmt.Sprintf("w%d-c%d", wi, seq), BatchNumber: b.Number})
			if err == nil {
				w.mu.Lock()
				w.closes++
				w.mu.Unlock()
			}
		default:
			authorize(newReq(term))
		}
	}
}

// TestConcurrentInvariants checks, after heavy concurrent traffic with
// retries, reversals racing their originals and refunds, that no limit was
// exceeded, nothing was approved twice, and the ledger, the batches and the
// answers agree.
func TestConcurrentInvariants(t *testing.T) {
	v := newEnv(t)
	const (
		daily    = 40_000
		perTx    = 2000
		velocity = 4
	)
	v.dir.def.DailyLimit = payment.LimitOf(daily)
	v.dir.def.PerTransactionLimit = payment.LimitOf(perTx)
	v.dir.def.VelocityLimit, v.dir.def.VelocityWindow = velocity, time.Hour
	w := &workload{v: v, workers: 24, opsEach: 120, tokens: 12, captures: true}
	for i := range 6 {
		w.terms = append(w.terms, fmt.Sprintf("TI%06d", i))
	}
	w.run(t)

	ledger := v.transactions(payment.TxFilter{})
	type tokKey struct{ term, token string }
	live := map[string]int64{}
	approvalsPerCard := map[tokKey]int{}
	perRequest := map[[2]string]int{}
	byID := map[string]payment.Transaction{}
	sold := map[string]int64{}         // refunded per sale, from the refund records
	capturedBy := map[string][]int64{} // approved capture amounts per pre-auth
	for _, tx := range ledger {
		byID[tx.ID] = tx
		if tx.Code != "94" {
			perRequest[[2]string{tx.TerminalID, tx.RequestID}]++
		}
		if tx.Decision != payment.DecisionApproved {
			continue
		}
		switch tx.Kind {
		case payment.TxKindRefund:
			sold[tx.OriginalID] += tx.Amount.MinorUnits
			continue
		case payment.TxKindCapture:
			capturedBy[tx.OriginalID] = append(capturedBy[tx.OriginalID], tx.Amount.MinorUnits)
			continue
		}
		if tx.Amount.MinorUnits > perTx {
			t.Errorf("%s: approved %d over the per-transaction limit", tx.ID, tx.Amount.MinorUnits)
		}
		switch {
		case tx.Reversed:
		case tx.CapturedAmount > 0: // the rest was released
			live[tx.TerminalID] += tx.CapturedAmount
		default:
			live[tx.TerminalID] += tx.Amount.MinorUnits
		}
	}
	for key, n := range perRequest {
		if n != 1 {
			t.Errorf("request %v decided %d times, want once", key, n)
		}
	}
	for term, sum := range live {
		if sum > daily {
			t.Errorf("terminal %s: %d approved and live, over the daily limit %d", term, sum, daily)
		}
	}
	// Every answer matches the ledger.
	approved := 0
	for key, a := range w.auths {
		tx, ok := byID[a.res.AuthorizationID]
		if !ok {
			t.Errorf("%v: answered %s, not in the ledger", key, a.res.AuthorizationID)
			continue
		}
		if tx.Code != a.res.ResponseCode || tx.AuthCode != a.res.AuthCode || tx.RequestID != key[1] {
			t.Errorf("%v: answered %s/%s, ledger has %s/%s", key, a.res.ResponseCode, a.res.AuthCode, tx.Code, tx.AuthCode)
		}
		if a.res.Decision == payment.DecisionApproved {
			approved++
			approvalsPerCard[tokKey{key[0], a.req.Card.Token}]++
		}
	}
	for k, n := range approvalsPerCard {
		if n > velocity {
			t.Errorf("card %v approved %d times within the window, over the limit %d", k, n, velocity)
		}
	}
	// Each reversal took effect exactly once, and only reversals did.
	for _, tx := range ledger {
		if n := w.reversed[tx.ID]; tx.Reversed && n != 1 || !tx.Reversed && n != 0 {
			t.Errorf("%s: reversed=%v but %d REVERSED answers", tx.ID, tx.Reversed, n)
		}
		if tx.Kind == payment.TxKindSale && (tx.RefundedAmount != sold[tx.ID] || tx.RefundedAmount != w.refunds[tx.ID]) {
			t.Errorf("%s: refunded %d, refunds in the ledger %d, approved refund answers %d", tx.ID, tx.RefundedAmount, sold[tx.ID], w.refunds[tx.ID])
		}
		if tx.RefundedAmount > tx.Amount.MinorUnits {
			t.Errorf("%s: refunded %d of %d", tx.ID, tx.RefundedAmount, tx.Amount.MinorUnits)
		}
		// A pre-auth is captured at most once, within its amount, as the
		// answers said, and a captured one is never reversed.
		if tx.Kind != payment.TxKindPreauth {
			continue
		}
		caps := capturedBy[tx.ID]
		if len(caps) > 1 || w.captureCount[tx.ID] > 1 {
			t.Errorf("%s: captured %d times in the ledger, %d approved answers; want at most once", tx.ID, len(caps), w.captureCount[tx.ID])
		}
		if want := w.captured[tx.ID]; tx.CapturedAmount != want || (len(caps) == 1) != (want > 0) || len(caps) == 1 && caps[0] != want {
			t.Errorf("%s: captured %d, ledger captures %v, approved capture answers %d", tx.ID, tx.CapturedAmount, caps, want)
		}
		if tx.CapturedAmount > tx.Amount.MinorUnits || tx.CapturedAmount > 0 && tx.Reversed {
			t.Errorf("%s: captured %d of %d, reversed %v", tx.ID, tx.CapturedAmount, tx.Amount.MinorUnits, tx.Reversed)
		}
	}
	// The open batches hold exactly the ledger's totals.
	for _, term := range w.terms {
		var want payment.BatchTotals
		want.Currency = cur
		for _, tx := range v.transactions(payment.TxFilter{TerminalID: term}) {
			addTotals(&want, tx)
		}
		if got := v.openBatch(term).ServerTotals; got != want {
			t.Errorf("terminal %s batch: got %+v, want %+v", term, got, want)
		}
	}
	if approved == 0 || len(w.reversed) == 0 || len(sold) == 0 || len(capturedBy) == 0 {
		t.Errorf("workload too tame: %d approvals, %d reversals, %d refunded sales, %d captured pre-auths",
			approved, len(w.reversed), len(sold), len(capturedBy))
	}
	t.Logf("%d transactions, %d approvals, %d reversed, %d refunded sales, %d captured pre-auths",
		len(ledger), approved, len(w.reversed), len(sold), len(capturedBy))
}

// addTotals adds an approved transaction to totals as batches count it.
func addTotals(s *payment.BatchTotals, tx payment.Transaction) {
	if tx.Decision != payment.DecisionApproved {
		return
	}
	a := tx.Amount.MinorUnits
	switch {
	case tx.Kind == payment.TxKindRefund:
		s.RefundCount++
		s.RefundAmount += a
	case tx.Reversed:
		s.ReversalCount++
		s.ReversalAmount += a
	case tx.Kind == payment.TxKindSale || tx.Kind == payment.TxKindCapture:
		s.SaleCount++
		s.SaleAmount += a
	case tx.CapturedAmount > 0: // a captured pre-auth is no longer a hold
	default:
		s.PreauthCount++
		s.PreauthAmount += a
	}
}

// TestTotalsConserved is a bank test: under concurrent traffic across
// business dates with batches closing mid-run, every approved amount
// appears exactly once in the batch totals and exactly once in the
// settlement totals.
func TestTotalsConserved(t *testing.T) {
	v := newEnv(t)
	w := &workload{v: v, workers: 16, opsEach: 120, tokens: 50, closeOne: true,
		every: 15, tick: func() { v.clock.Advance(5 * time.Hour) }}
	for i := range 5 {
		w.terms = append(w.terms, fmt.Sprintf("TB%06d", i))
	}
	// One store is far east, so its business dates differ from UTC.
	v.dir.update(w.terms[0], func(p *payment.Policy) { p.Location = time.FixedZone("UTC+13", 13*3600) })
	w.run(t)

	// What terminals were told.
	var told payment.BatchTotals
	for _, a := range w.auths {
		if a.res.Decision == payment.DecisionApproved {
			told.SaleAmount += a.req.Amount.MinorUnits // sales, pre-auths and reversed ones together
			told.SaleCount++
		}
	}
	told.RefundAmount = w.refundTotal
	told.ReversalAmount = w.revAmount

	fold := func(sum *payment.BatchTotals, b payment.BatchTotals) {
		sum.SaleCount += b.SaleCount + b.PreauthCount + b.ReversalCount
		sum.SaleAmount += b.SaleAmount + b.PreauthAmount + b.ReversalAmount
		sum.RefundAmount += b.RefundAmount
		sum.ReversalAmount += b.ReversalAmount
	}
	var batches payment.BatchTotals
	nBatches := 0
	for _, term := range w.terms {
		open := v.openBatch(term)
		for n := uint64(1); n <= open.Number; n++ {
			b, ok, err := v.eng.Batch(t.Context(), term, n)
			if err != nil || !ok {
				t.Fatalf("Batch(%s, %d): %v, %v", term, n, ok, err)
			}
			fold(&batches, b.ServerTotals)
			nBatches++
		}
	}
	dates := map[string]bool{}
	for _, tx := range v.transactions(payment.TxFilter{}) {
		dates[tx.BusinessDate] = true
	}
	var settled payment.BatchTotals
	for d := range dates {
		rep, err := v.eng.SettlementReport(t.Context(), merch, d)
		if err != nil {
			t.Fatal(err)
		}
		fold(&settled, rep.Totals)
	}
	if batches != told {
		t.Errorf("batch totals: got %+v, want what terminals were told %+v", batches, told)
	}
	if settled != told {
		t.Errorf("settlement totals: got %+v, want what terminals were told %+v", settled, told)
	}
	if nBatches <= len(w.terms) || len(dates) < 3 || w.closes == 0 {
		t.Errorf("workload too tame: %d batches, %d business dates, %d closes", nBatches, len(dates), w.closes)
	}
	t.Logf("%d approvals over %d batches and %d business dates", told.SaleCount, nBatches, len(dates))
}
