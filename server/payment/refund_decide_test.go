package payment

import "testing"

// TestDecideRefund drives the pure Refund decision through every
// response-code path, without an engine or a store.
func TestDecideRefund(t *testing.T) {
	req := func(tweak ...func(*RefundRequest)) *RefundRequest {
		r := &RefundRequest{RequestID: "f1", TerminalID: "T1", AuthorizationID: "A1", Amount: Money{MinorUnits: 400, Currency: "NZD"}}
		for _, f := range tweak {
			f(r)
		}
		return r
	}
	pol := &Policy{TerminalID: "T1", MerchantID: "M1", MerchantCurrency: "NZD"}
	cross := &Policy{TerminalID: "T1", MerchantID: "M1", MerchantCurrency: "NZD", CrossTerminalRefunds: true}
	suspended := &Policy{TerminalID: "T1", MerchantID: "M1", MerchantCurrency: "NZD", Suspended: true}
	sale := func(tweak ...func(*tx)) *tx {
		s := &tx{seq: 7, kind: TxKindSale, terminal: "T1", merchant: "M1", amount: 1000, currency: "NZD", decision: DecisionApproved, refunded: 500}
		for _, f := range tweak {
			f(s)
		}
		return s
	}
	fp := fingerprint{1}
	tests := []struct {
		name string
		req  *RefundRequest
		pol  *Policy
		view refundView
		want refundDecision
	}{
		{name: "approved", req: req(), pol: pol, view: refundView{sale: sale()}, want: refundDecision{code: CodeApproved}},
		{name: "the rest of the sale", req: req(func(r *RefundRequest) { r.Amount.MinorUnits = 500 }), pol: pol,
			view: refundView{sale: sale()}, want: refundDecision{code: CodeApproved}},
		{name: "replay", req: req(), pol: suspended,
			view: refundView{entry: &entry{entryRec: entryRec{kind: opRefund, fp: fp}}},
			want: refundDecision{replay: true}},
		{name: "request ID of a different Refund", req: req(), pol: pol,
			view: refundView{entry: &entry{entryRec: entryRec{kind: opRefund, fp: fingerprint{2}}}, sale: sale()},
			want: refundDecision{code: CodeDuplicateTransmission, duplicate: true}},
		{name: "request ID of an Authorize", req: req(), pol: pol,
			view: refundView{entry: &entry{entryRec: entryRec{kind: opAuthorize, fp: fp}}, sale: sale()},
			want: refundDecision{code: CodeDuplicateTransmission, duplicate: true}},
		{name: "suspended", req: req(), pol: suspended, view: refundView{sale: sale()}, want: refundDecision{code: CodeNotPermitted}},
		{name: "unknown or invisible sale", req: req(), pol: pol, want: refundDecision{code: CodeInvalidTransaction}},
		{name: "pre-auth", req: req(), pol: pol, view: refundView{sale: sale(func(s *tx) { s.kind = TxKindPreauth })},
			want: refundDecision{code: CodeInvalidTransaction}},
		{name: "captured pre-auth, within the captured amount", req: req(func(r *RefundRequest) { r.Amount.MinorUnits = 100 }), pol: pol,
			view: refundView{sale: sale(func(s *tx) { s.kind, s.captured = TxKindPreauth, 600 })}, want: refundDecision{code: CodeApproved}},
		{name: "captured pre-auth, beyond the captured amount", req: req(), pol: pol,
			view: refundView{sale: sale(func(s *tx) { s.kind, s.captured = TxKindPreauth, 600 })}, want: refundDecision{code: CodeInvalidAmount}},
		{name: "declined sale", req: req(), pol: pol, view: refundView{sale: sale(func(s *tx) { s.decision = DecisionDeclined })},
			want: refundDecision{code: CodeInvalidTransaction}},
		{name: "reversed sale", req: req(), pol: pol, view: refundView{sale: sale(func(s *tx) { s.reversed = true })},
			want: refundDecision{code: CodeInvalidTransaction}},
		{name: "another terminal's sale", req: req(), pol: pol, view: refundView{sale: sale(func(s *tx) { s.terminal = "T2" })},
			want: refundDecision{code: CodeNotPermitted}},
		{name: "another terminal's sale, cross-terminal refunds", req: req(), pol: cross,
			view: refundView{sale: sale(func(s *tx) { s.terminal = "T2" })}, want: refundDecision{code: CodeApproved}},
		{name: "zero amount", req: req(func(r *RefundRequest) { r.Amount.MinorUnits = 0 }), pol: pol,
			view: refundView{sale: sale()}, want: refundDecision{code: CodeInvalidAmount}},
		{name: "other currency", req: req(func(r *RefundRequest) { r.Amount.Currency = "AUD" }), pol: pol,
			view: refundView{sale: sale()}, want: refundDecision{code: CodeInvalidAmount}},
		{name: "more than remains", req: req(func(r *RefundRequest) { r.Amount.MinorUnits = 501 }), pol: pol,
			view: refundView{sale: sale()}, want: refundDecision{code: CodeInvalidAmount}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before tx
			if tt.view.sale != nil {
				before = *tt.view.sale
			}
			got := decideRefund(tt.req, fp, tt.pol, &tt.view)
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if tt.view.sale != nil && *tt.view.sale != before {
				t.Errorf("the decision changed the sale: got %+v, want %+v", *tt.view.sale, before)
			}
		})
	}
}
