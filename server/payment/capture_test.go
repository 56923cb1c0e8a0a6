package payment_test

import (
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/payment"
)

func preauth(terminal, requestID string, amount int64) payment.AuthorizeRequest {
	r := sale(terminal, requestID, amount)
	r.Capture = false
	return r
}

func (v *env) capture(terminal, requestID, authID string, amount int64) payment.CaptureResult {
	v.t.Helper()
	res, err := v.eng.Capture(v.t.Context(), payment.CaptureRequest{
		TerminalID: terminal, RequestID: requestID, AuthorizationID: authID,
		Amount: payment.Money{MinorUnits: amount, Currency: cur},
	})
	if err != nil {
		v.t.Fatalf("Capture(%s): %v", requestID, err)
	}
	return res
}

func TestCaptures(t *testing.T) {
	v := newEnv(t)
	full := v.authorize(preauth(term1, "p-full", 1000))
	part := v.authorize(preauth(term1, "p-part", 1000))
	over := v.authorize(preauth(term1, "p-over", 1000))
	rev := v.authorize(preauth(term1, "p-rev", 700))
	v.reverse(term1, "p-rev-r", "p-rev")
	declinedReq := preauth(term1, "p-dec", 300)
	declinedReq.Card.Token = "tok_test_nsf"
	declined := v.authorize(declinedReq)
	sold := v.authorize(sale(term1, "s", 400))
	other := v.authorize(preauth("T0000002", "p-other", 500))
	for _, r := range []payment.AuthorizeResult{full, part, over, rev, sold, other} {
		mustCode(t, r, "00")
	}

	steps := []struct {
		name         string
		terminal     string
		authID       string
		amount       int64
		currency     string
		want         string
		wantReleased int64
	}{
		{"full capture", term1, full.AuthorizationID, 1000, cur, "00", 0},
		{"second capture of a captured pre-auth", term1, full.AuthorizationID, 1, cur, "12", 0},
		{"partial capture", term1, part.AuthorizationID, 600, cur, "00", 400},
		{"over-capture", term1, over.AuthorizationID, 1001, cur, "13", 0},
		{"zero", term1, over.AuthorizationID, 0, cur, "13", 0},
		{"other currency", term1, over.AuthorizationID, 100, "USD", "13", 0},
		{"reversed pre-auth", term1, rev.AuthorizationID, 700, cur, "12", 0},
		{"declined pre-auth", term1, declined.AuthorizationID, 300, cur, "12", 0},
		{"a sale is not a pre-auth", term1, sold.AuthorizationID, 400, cur, "12", 0},
		{"another terminal's pre-auth", term1, other.AuthorizationID, 500, cur, "57", 0},
		{"unknown authorization", term1, "A00000000000000000000000000000000", 1, cur, "12", 0},
		{"over-capture refused, then captured within the amount", term1, over.AuthorizationID, 1000, cur, "00", 0},
	}
	var captureIDs []string
	for i, s := range steps {
		res, err := v.eng.Capture(t.Context(), payment.CaptureRequest{
			TerminalID: s.terminal, RequestID: "cap-" + string(rune('a'+i)), AuthorizationID: s.authID,
			Amount: payment.Money{MinorUnits: s.amount, Currency: s.currency},
		})
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if res.ResponseCode != s.want || res.ReleasedAmount.MinorUnits != s.wantReleased {
			t.Errorf("%s: got %s with %d released, want %s with %d", s.name, res.ResponseCode, res.ReleasedAmount.MinorUnits, s.want, s.wantReleased)
		}
		approved := s.want == "00"
		if (res.Decision == payment.DecisionApproved) != approved || (res.AuthCode != "") != approved {
			t.Errorf("%s: got decision %v auth code %q, want approved %v", s.name, res.Decision, res.AuthCode, approved)
		}
		if !strings.HasPrefix(res.CaptureID, "C") || len(res.CaptureID) != 33 || res.BatchNumber != 1 || res.Replayed {
			t.Errorf("%s: got %+v, want a fresh C capture ID in batch 1", s.name, res)
		}
		captureIDs = append(captureIDs, res.CaptureID)
	}
	if got := v.capture(term1, "cap-a", full.AuthorizationID, 1000); got.AuthCode != full.AuthCode {
		t.Errorf("capture auth code: got %q, want the pre-auth's %q", got.AuthCode, full.AuthCode)
	}

	// Batch: three captures (1000 + 600 + 1000) and the sale are sales;
	// the only live hold left is none (all approved pre-auths of term1 are
	// captured or reversed); the reversal is counted.
	want := payment.BatchTotals{Currency: cur, SaleCount: 4, SaleAmount: 3000, ReversalCount: 1, ReversalAmount: 700}
	if got := v.liveTotals(term1); got != want {
		t.Errorf("open batch: got %+v, want %+v", got, want)
	}
	// Transactions record the capture and the captured amount.
	txs := v.transactions(payment.TxFilter{TerminalID: term1})
	var caps, captured int
	for _, tx := range txs {
		switch {
		case tx.Kind == payment.TxKindCapture:
			caps++
			if tx.Decision == payment.DecisionApproved && tx.OriginalID == "" {
				t.Errorf("capture %s: no original", tx.ID)
			}
		case tx.ID == part.AuthorizationID:
			captured++
			if tx.CapturedAmount != 600 {
				t.Errorf("partially captured pre-auth: got captured %d, want 600", tx.CapturedAmount)
			}
		}
	}
	if caps != len(steps) || captured != 1 {
		t.Errorf("got %d captures and %d listed pre-auth, want %d and 1", caps, captured, len(steps))
	}
	// A capture ID is not an authorization: a refund or capture naming it
	// is refused.
	if r := v.refund(term1, "ref-cap", captureIDs[0], 1); r.ResponseCode != "12" {
		t.Errorf("refund naming a capture ID: got %s, want 12", r.ResponseCode)
	}
	if r := v.capture(term1, "cap-cap", captureIDs[0], 1); r.ResponseCode != "12" {
		t.Errorf("capture naming a capture ID: got %s, want 12", r.ResponseCode)
	}
}

// liveTotals returns the terminal's open batch's running totals.
func (v *env) liveTotals(terminal string) payment.BatchTotals {
	v.t.Helper()
	b, err := v.eng.OpenBatch(v.t.Context(), terminal)
	if err != nil {
		v.t.Fatalf("OpenBatch(%s): %v", terminal, err)
	}
	return b.ServerTotals
}

func TestCaptureIdempotency(t *testing.T) {
	v := newEnv(t)
	pre := v.authorize(preauth(term1, "p", 1000))
	first := v.capture(term1, "c", pre.AuthorizationID, 800)
	if first.ResponseCode != "00" {
		t.Fatalf("capture: got %s, want 00", first.ResponseCode)
	}
	again := v.capture(term1, "c", pre.AuthorizationID, 800)
	if !again.Replayed || again.CaptureID != first.CaptureID || again.ResponseCode != "00" || again.ReleasedAmount != first.ReleasedAmount {
		t.Errorf("replay: got %+v, want %+v replayed", again, first)
	}
	// Same request ID, different content: 94, nothing captured twice.
	if dup := v.capture(term1, "c", pre.AuthorizationID, 900); dup.ResponseCode != "94" || dup.Replayed {
		t.Errorf("reused request ID: got %s replayed %v, want 94 not replayed", dup.ResponseCode, dup.Replayed)
	}
	// The namespace is shared with Authorize: an Authorize under the
	// capture's request ID is 94, and a capture under an Authorize's is 94.
	if res := v.authorize(preauth(term1, "c", 5)); res.ResponseCode != "94" {
		t.Errorf("Authorize reusing a capture's request ID: got %s, want 94", res.ResponseCode)
	}
	if res := v.capture(term1, "p", pre.AuthorizationID, 800); res.ResponseCode != "94" {
		t.Errorf("capture reusing the pre-auth's request ID: got %s, want 94", res.ResponseCode)
	}
	want := payment.BatchTotals{Currency: cur, SaleCount: 1, SaleAmount: 800}
	if got := v.liveTotals(term1); got != want {
		t.Errorf("open batch: got %+v, want %+v", got, want)
	}
}

func TestCaptureAndReversal(t *testing.T) {
	v := newEnv(t)
	// A captured pre-auth can no longer be reversed; nor can the capture.
	pre := v.authorize(preauth(term1, "p", 1000))
	v.capture(term1, "c", pre.AuthorizationID, 1000)
	if r := v.reverse(term1, "p-r", "p"); r.Status != payment.ReverseStatusNotReversible {
		t.Errorf("reverse a captured pre-auth: got %v, want NotReversible", r.Status)
	}
	if r := v.reverse(term1, "c-r", "c"); r.Status != payment.ReverseStatusNotReversible {
		t.Errorf("reverse a capture: got %v, want NotReversible", r.Status)
	}
	// A capture reversed before it arrived (unknown outcome, then a
	// reversal by its request ID) is declined when it arrives, once.
	pre2 := v.authorize(preauth(term1, "p2", 500))
	if r := v.reverse(term1, "lost-r", "lost"); r.Status != payment.ReverseStatusOriginalNotFound {
		t.Fatalf("reverse unknown: got %v, want OriginalNotFound", r.Status)
	}
	if r := v.capture(term1, "lost", pre2.AuthorizationID, 500); r.ResponseCode != "12" {
		t.Errorf("capture after its reversal: got %s, want 12", r.ResponseCode)
	}
	// Reversing the pre-auth releases the hold; a capture then is refused.
	if r := v.reverse(term1, "p2-r", "p2"); r.Status != payment.ReverseStatusReversed {
		t.Fatalf("reverse pre-auth: got %v, want Reversed", r.Status)
	}
	if r := v.capture(term1, "late", pre2.AuthorizationID, 500); r.ResponseCode != "12" {
		t.Errorf("capture after the pre-auth's reversal: got %s, want 12", r.ResponseCode)
	}
	want := payment.BatchTotals{Currency: cur, SaleCount: 1, SaleAmount: 1000, ReversalCount: 1, ReversalAmount: 500}
	if got := v.liveTotals(term1); got != want {
		t.Errorf("open batch: got %+v, want %+v", got, want)
	}
}

func TestCaptureRefund(t *testing.T) {
	v := newEnv(t)
	pre := v.authorize(preauth(term1, "p", 1000))
	v.capture(term1, "c", pre.AuthorizationID, 600)
	if r := v.refund(term1, "r1", pre.AuthorizationID, 601); r.ResponseCode != "13" || r.RemainingRefundable.MinorUnits != 600 {
		t.Errorf("refund above the captured amount: got %s with %d remaining, want 13 with 600", r.ResponseCode, r.RemainingRefundable.MinorUnits)
	}
	if r := v.refund(term1, "r2", pre.AuthorizationID, 600); r.ResponseCode != "00" || r.RemainingRefundable.MinorUnits != 0 {
		t.Errorf("refund of the captured amount: got %s with %d remaining, want 00 with 0", r.ResponseCode, r.RemainingRefundable.MinorUnits)
	}
}

func TestCaptureExpiry(t *testing.T) {
	v := newEnv(t)
	pre := v.authorize(preauth(term1, "p", 1000))
	pre2 := v.authorize(preauth(term1, "p2", 1000))
	v.clock.Advance(7*24*time.Hour - time.Second)
	if r := v.capture(term1, "c", pre.AuthorizationID, 1000); r.ResponseCode != "00" {
		t.Errorf("capture just within 7 days: got %s, want 00", r.ResponseCode)
	}
	v.clock.Advance(2 * time.Second)
	if r := v.capture(term1, "c2", pre2.AuthorizationID, 1000); r.ResponseCode != "12" {
		t.Errorf("capture after 7 days: got %s, want 12", r.ResponseCode)
	}
}

func TestCaptureSettlement(t *testing.T) {
	v := newEnv(t)
	ctx := t.Context()
	pre := v.authorize(preauth(term1, "p", 1000))
	held := v.authorize(preauth(term1, "h", 300))
	mustCode(t, held, "00")
	v.authorize(sale(term1, "s", 200))
	want := payment.BatchTotals{Currency: cur, SaleCount: 1, SaleAmount: 200, PreauthCount: 2, PreauthAmount: 1300}
	if got := v.liveTotals(term1); got != want {
		t.Fatalf("before capture: got %+v, want %+v", got, want)
	}
	v.capture(term1, "c", pre.AuthorizationID, 750)
	want = payment.BatchTotals{Currency: cur, SaleCount: 2, SaleAmount: 950, PreauthCount: 1, PreauthAmount: 300}
	if got := v.liveTotals(term1); got != want {
		t.Fatalf("after capture: got %+v, want %+v", got, want)
	}
	res, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term1, RequestID: "close", BatchNumber: 1,
		TerminalTotals: payment.BatchTotals{Currency: cur, SaleCount: 2, SaleAmount: 950}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.InBalance || res.ServerTotals != want {
		t.Errorf("close: got in balance %v with %+v, want in balance with %+v", res.InBalance, res.ServerTotals, want)
	}
	rep, err := v.eng.SettlementReport(ctx, merch, "2026-03-14")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Totals != want {
		t.Errorf("settlement: got %+v, want %+v", rep.Totals, want)
	}
	// A pre-auth of a closed batch is captured into the open batch and
	// counted there as a sale; the closed batch is not changed.
	if r := v.capture(term1, "c2", held.AuthorizationID, 300); r.ResponseCode != "00" || r.BatchNumber != 2 {
		t.Fatalf("capture into batch 2: got %s in batch %d, want 00 in batch 2", r.ResponseCode, r.BatchNumber)
	}
	if got, want2 := v.liveTotals(term1), (payment.BatchTotals{Currency: cur, SaleCount: 1, SaleAmount: 300}); got != want2 {
		t.Errorf("batch 2: got %+v, want %+v", got, want2)
	}
	if b, ok, err := v.eng.Batch(ctx, term1, 1); err != nil || !ok || b.ServerTotals != want {
		t.Errorf("closed batch 1: got %+v (%v, %v), want %+v", b.ServerTotals, ok, err, want)
	}
}

func TestCaptureAcrossRestart(t *testing.T) {
	for _, crash := range []bool{false, true} {
		name := "clean"
		if crash {
			name = "without checkpoints"
		}
		t.Run(name, func(t *testing.T) {
			var tweak []func(*payment.Options)
			if crash {
				tweak = append(tweak, payment.DisableCheckpoints)
			}
			v := newEnv(t, tweak...)
			v.dir.update(term1, func(p *payment.Policy) { p.DailyLimit = payment.LimitOf(2000) })
			pre := v.authorize(preauth(term1, "p", 1000))
			late := v.authorize(preauth(term1, "late", 400))
			first := v.capture(term1, "c", pre.AuthorizationID, 600)
			want := payment.BatchTotals{Currency: cur, SaleCount: 1, SaleAmount: 600, PreauthCount: 1, PreauthAmount: 400}

			v.reopen()

			if got := v.liveTotals(term1); got != want {
				t.Errorf("open batch after restart: got %+v, want %+v", got, want)
			}
			again := v.capture(term1, "c", pre.AuthorizationID, 600)
			if !again.Replayed || again.CaptureID != first.CaptureID {
				t.Errorf("replay after restart: got %+v, want %s replayed", again, first.CaptureID)
			}
			if r := v.capture(term1, "c-2", pre.AuthorizationID, 100); r.ResponseCode != "12" {
				t.Errorf("second capture after restart: got %s, want 12", r.ResponseCode)
			}
			// The pre-auth made before the restart is captured after it.
			if r := v.capture(term1, "late-c", late.AuthorizationID, 400); r.ResponseCode != "00" {
				t.Errorf("capture after restart: got %s, want 00", r.ResponseCode)
			}
			// Daily limit: 600 + 400 captured; the uncaptured 400 was
			// released, so 1000 is left.
			mustCode(t, v.authorize(sale(term1, "s-over", 1001)), "61")
			mustCode(t, v.authorize(sale(term1, "s", 1000)), "00")
		})
	}
}

func TestOpenBatch(t *testing.T) {
	v := newEnv(t)
	ctx := t.Context()
	b, err := v.eng.OpenBatch(ctx, term1)
	if err != nil {
		t.Fatal(err)
	}
	if b.Number != 1 || b.State != payment.BatchStateOpen || b.ServerTotals != (payment.BatchTotals{Currency: cur}) || !b.OpenTime.Equal(startTime) {
		t.Errorf("new terminal: got %+v, want empty open batch 1 opened at %v", b, startTime)
	}
	res := v.authorize(sale(term1, "s", 100))
	if res.BatchNumber != b.Number {
		t.Errorf("first sale: got batch %d, want the reported %d", res.BatchNumber, b.Number)
	}
	if _, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term1, RequestID: "close", BatchNumber: 1,
		TerminalTotals: payment.BatchTotals{Currency: cur, SaleCount: 1, SaleAmount: 100}}); err != nil {
		t.Fatal(err)
	}
	if got := v.liveTotals(term1); got != (payment.BatchTotals{Currency: cur}) {
		t.Errorf("after close: got %+v, want empty", got)
	}
	// A rebind closes a batch with transactions: the number reported is
	// the one the next transaction and CloseBatch use.
	v.authorize(sale(term1, "s2", 100))
	v.dir.update(term1, func(p *payment.Policy) { p.StoreID = "S2" })
	b, err = v.eng.OpenBatch(ctx, term1)
	if err != nil {
		t.Fatal(err)
	}
	if b.Number != 3 || b.StoreID != "S2" {
		t.Errorf("after rebind: got batch %d of store %s, want 3 of S2", b.Number, b.StoreID)
	}
	v.reopen()
	if b, err := v.eng.OpenBatch(ctx, term1); err != nil || b.Number != 3 {
		t.Errorf("after restart: got batch %d (%v), want 3", b.Number, err)
	}
	if _, err := v.eng.OpenBatch(ctx, "bad id!"); err == nil {
		t.Error("malformed terminal ID: got no error")
	}
}
