package payment_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/payment"
)

func TestReplayBeforeAndAfterReopen(t *testing.T) {
	v := newEnv(t)
	ctx := t.Context()
	first := v.authorize(sale(term1, "a-1", 1500))
	mustCode(t, first, "00")
	refund := v.refund(term1, "rf-1", first.AuthorizationID, 500)
	if refund.ResponseCode != "00" {
		t.Fatalf("refund: got %s, want 00", refund.ResponseCode)
	}
	decline := v.authorize(func() payment.AuthorizeRequest {
		r := sale(term1, "a-2", 300)
		r.Card.Token = "tok_test_expired"
		return r
	}())
	mustCode(t, decline, "54")
	rev := v.reverse(term1, "rv-1", "a-unknown")
	// A reversal that took effect, on another terminal so that the batch
	// below stays as it is.
	sale2 := v.authorize(sale("T0000002", "b-1", 700))
	revDone := v.reverse("T0000002", "rv-2", "b-1")
	if revDone.Status != payment.ReverseStatusReversed || revDone.AuthorizationID != sale2.AuthorizationID {
		t.Fatalf("reverse: got %+v, want %s reversed", revDone, sale2.AuthorizationID)
	}
	closeReq := payment.CloseBatchRequest{TerminalID: term1, RequestID: "close-1", BatchNumber: 1,
		TerminalTotals: payment.BatchTotals{SaleCount: 1, SaleAmount: 1500, RefundCount: 1, RefundAmount: 500}}
	closed, err := v.eng.CloseBatch(ctx, closeReq)
	if err != nil || !closed.InBalance {
		t.Fatalf("CloseBatch: got %+v, %v; want in balance", closed, err)
	}

	check := func(when string) {
		t.Helper()
		a := v.authorize(sale(term1, "a-1", 1500))
		if !a.Replayed || a.AuthorizationID != first.AuthorizationID || a.AuthCode != first.AuthCode ||
			a.ResponseCode != "00" || a.BatchNumber != first.BatchNumber || !a.DecisionTime.Equal(first.DecisionTime) {
			t.Errorf("%s: authorize replay: got %+v, want %+v replayed", when, a, first)
		}
		d := v.authorize(func() payment.AuthorizeRequest {
			r := sale(term1, "a-2", 300)
			r.Card.Token = "tok_test_expired"
			return r
		}())
		if !d.Replayed || d.ResponseCode != "54" || d.AuthorizationID != decline.AuthorizationID {
			t.Errorf("%s: decline replay: got %+v, want %+v replayed", when, d, decline)
		}
		r := v.refund(term1, "rf-1", first.AuthorizationID, 500)
		if !r.Replayed || r.RefundID != refund.RefundID || r.RemainingRefundable != refund.RemainingRefundable {
			t.Errorf("%s: refund replay: got %+v, want %+v replayed", when, r, refund)
		}
		x := v.reverse(term1, "rv-1", "a-unknown")
		if !x.Replayed || x.Status != rev.Status {
			t.Errorf("%s: reverse replay: got %+v, want %+v replayed", when, x, rev)
		}
		x2 := v.reverse("T0000002", "rv-2", "b-1")
		if want := revDone; !x2.Replayed || x2.Status != want.Status || x2.AuthorizationID != want.AuthorizationID || x2.ReversedAmount != want.ReversedAmount {
			t.Errorf("%s: reverse replay: got %+v, want %+v replayed", when, x2, want)
		}
		c, err := v.eng.CloseBatch(ctx, closeReq)
		if err != nil || !c.Replayed || c.BatchNumber != 1 || c.NextBatchNumber != 2 || c.ServerTotals != closed.ServerTotals {
			t.Errorf("%s: close replay: got %+v, %v; want %+v replayed", when, c, err, closed)
		}
		// Replays changed nothing.
		if n := len(v.transactions(payment.TxFilter{TerminalID: term1})); n != 3 {
			t.Errorf("%s: ledger: got %d transactions, want 3", when, n)
		}
	}
	check("before reopen")
	v.reopen()
	check("after reopen")
	v.clock.Advance(23 * time.Hour)
	v.reopen()
	check("23 hours later")
}

func TestReusedRequestID(t *testing.T) {
	v := newEnv(t)
	ctx := t.Context()
	orig := v.authorize(sale(term1, "dup", 1000))
	mustCode(t, orig, "00")

	tests := []struct {
		name string
		req  func(*payment.AuthorizeRequest)
	}{
		{"other amount", func(r *payment.AuthorizeRequest) { r.Amount.MinorUnits = 1001 }},
		{"other card", func(r *payment.AuthorizeRequest) { r.Card.Token = "tok_other" }},
		{"pre-auth instead of sale", func(r *payment.AuthorizeRequest) { r.Capture = false }},
		{"other entry mode", func(r *payment.AuthorizeRequest) { r.Card.EntryMode = payment.EntryModeSwipe }},
	}
	for _, tt := range tests {
		req := sale(term1, "dup", 1000)
		tt.req(&req)
		res := v.authorize(req)
		if res.ResponseCode != "94" || res.Replayed || res.AuthorizationID == orig.AuthorizationID {
			t.Errorf("%s: got %+v, want a fresh 94 decline", tt.name, res)
		}
	}
	// The terminal's local time is not content: a retry may stamp it anew.
	req := sale(term1, "dup", 1000)
	req.LocalTime = req.LocalTime.Add(time.Minute)
	if res := v.authorize(req); !res.Replayed || res.AuthorizationID != orig.AuthorizationID {
		t.Errorf("retry with a new local time: got %+v, want a replay", res)
	}
	// Request IDs are per terminal: another terminal may use the same one.
	if res := v.authorize(sale("T0000002", "dup", 1000)); res.ResponseCode != "00" || res.Replayed {
		t.Errorf("same ID on another terminal: got %+v, want a fresh approval", res)
	}
	// The namespace is shared by all kinds of request.
	if _, err := v.eng.Reverse(ctx, payment.ReverseRequest{TerminalID: term1, RequestID: "dup", OriginalRequestID: "x", Reason: payment.ReversalReasonTimeout}); !errors.Is(err, payment.ErrRequestIDReused) {
		t.Errorf("reverse reusing an authorize ID: got %v, want ErrRequestIDReused", err)
	}
	if res := v.refund(term1, "dup", orig.AuthorizationID, 1); res.ResponseCode != "94" {
		t.Errorf("refund reusing an authorize ID: got %s, want 94", res.ResponseCode)
	}
	if _, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term1, RequestID: "dup", BatchNumber: 1}); !errors.Is(err, payment.ErrRequestIDReused) {
		t.Errorf("close reusing an authorize ID: got %v, want ErrRequestIDReused", err)
	}
	// Reusing a reversal's ID for another reversal.
	v.reverse(term1, "rv", "dup")
	if _, err := v.eng.Reverse(ctx, payment.ReverseRequest{TerminalID: term1, RequestID: "rv", OriginalRequestID: "other", Reason: payment.ReversalReasonTimeout}); !errors.Is(err, payment.ErrRequestIDReused) {
		t.Errorf("reverse reusing a reverse ID: got %v, want ErrRequestIDReused", err)
	}
	// None of the 94s touched the original: it was reversed exactly once.
	b := v.openBatch(term1)
	if b.ServerTotals.SaleCount != 0 || b.ServerTotals.ReversalCount != 1 || b.ServerTotals.ReversalAmount != 1000 {
		t.Errorf("batch totals: got %+v, want the one sale reversed", b.ServerTotals)
	}
}

// TestConcurrentCopiesDecidedOnce sends 64 copies of one request at once,
// with the first commit held so that copies arrive while the original waits
// for its commit.
func TestConcurrentCopiesDecidedOnce(t *testing.T) {
	gate := make(chan struct{})
	var once sync.Once
	entered := make(chan struct{})
	v := newEnv(t, func(o *payment.Options) {
		payment.SetCommitHook(o, func() error {
			once.Do(func() { close(entered) })
			<-gate
			return nil
		})
	})
	const copies = 64
	results := make([]payment.AuthorizeResult, copies)
	errs := make([]error, copies)
	var wg sync.WaitGroup
	for i := range copies {
		wg.Go(func() {
			results[i], errs[i] = v.eng.Authorize(t.Context(), sale(term1, "once", 4200))
		})
	}
	<-entered
	close(gate)
	wg.Wait()

	fresh := 0
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("copy %d: %v", i, errs[i])
		}
		if !res.Replayed {
			fresh++
		}
		r0 := results[0]
		if res.AuthorizationID != r0.AuthorizationID || res.AuthCode != r0.AuthCode || res.ResponseCode != "00" ||
			res.BatchNumber != r0.BatchNumber || !res.DecisionTime.Equal(r0.DecisionTime) {
			t.Errorf("copy %d: got %+v, want the same answer as %+v", i, res, r0)
		}
	}
	if fresh != 1 {
		t.Errorf("copies decided: got %d, want exactly 1 (the others replayed)", fresh)
	}
	if n, _ := v.eng.Stats(); n != 1 {
		t.Errorf("authorizations decided: got %d, want 1", n)
	}
	if txs := v.transactions(payment.TxFilter{TerminalID: term1}); len(txs) != 1 {
		t.Errorf("ledger: got %d transactions, want 1", len(txs))
	}
	if b := v.openBatch(term1); b.ServerTotals.SaleCount != 1 || b.ServerTotals.SaleAmount != 4200 {
		t.Errorf("batch: got %+v, want one sale of 4200", b.ServerTotals)
	}
}

func TestMemoryBoundKeepsReplays(t *testing.T) {
	v := newEnv(t, func(o *payment.Options) { o.MaxEntries = 8 })
	ctx := t.Context()
	var first []payment.AuthorizeResult
	for i := range 40 {
		first = append(first, v.authorize(sale(term1, fmt.Sprint("m-", i), int64(100+i))))
	}
	v.reverse(term1, "rv-x", "never-sent") // a tombstone
	for i := range 3 {
		v.authorize(sale(term1, fmt.Sprint("filler-", i), 1))
		v.clock.Advance(time.Second)
	}
	n, err := v.eng.MemoryEntries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n > 8 {
		t.Errorf("entries in memory: got %d, want at most 8", n)
	}
	// Entries that left memory early are still honoured from disk.
	for i, want := range first {
		got := v.authorize(sale(term1, fmt.Sprint("m-", i), int64(100+i)))
		if !got.Replayed || got.AuthorizationID != want.AuthorizationID {
			t.Fatalf("replay %d: got %+v, want %+v replayed", i, got, want)
		}
	}
	if got := v.authorize(sale(term1, "never-sent", 5)); got.ResponseCode != "12" {
		t.Errorf("original of an evicted tombstone: got %s, want 12", got.ResponseCode)
	}
	// Reversal finds an original that left memory.
	if got := v.reverse(term1, "rv-a", "m-0"); got.Status != payment.ReverseStatusReversed || got.AuthorizationID != first[0].AuthorizationID {
		t.Errorf("reverse of an evicted original: got %+v, want REVERSED %s", got, first[0].AuthorizationID)
	}
}

func TestRetentionExpiresRequestIDs(t *testing.T) {
	v := newEnv(t)
	ctx := t.Context()
	orig := v.authorize(sale(term1, "old", 700))
	v.reverse(term1, "rv-old", "ghost")
	v.clock.Advance(24*time.Hour + time.Minute)
	if err := v.eng.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := v.eng.MemoryEntries(ctx); n != 0 {
		t.Errorf("entries in memory after retention: got %d, want 0", n)
	}
	// After the retention period a request ID may be used again.
	again := v.authorize(sale(term1, "old", 700))
	if again.Replayed || again.AuthorizationID == orig.AuthorizationID || again.ResponseCode != "00" {
		t.Errorf("request ID after retention: got %+v, want a fresh approval", again)
	}
	if got := v.authorize(sale(term1, "ghost", 1)); got.ResponseCode != "00" {
		t.Errorf("original after its tombstone expired: got %s, want 00", got.ResponseCode)
	}
	// The expired records are gone from disk too: a restart does not
	// resurrect them.
	v.reopen()
	if got := v.authorize(sale(term1, "old", 700)); !got.Replayed || got.AuthorizationID != again.AuthorizationID {
		t.Errorf("after reopen: got %+v, want the newer decision replayed", got)
	}
}
