package payment

import (
	"testing"
	"time"
)

// TestDecideCapture drives the pure Capture decision through every
// response-code path, without an engine or a store.
func TestDecideCapture(t *testing.T) {
	const validity = 7 * 24 * time.Hour
	decided := time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC).UnixNano()
	req := func(tweak ...func(*CaptureRequest)) *CaptureRequest {
		r := &CaptureRequest{RequestID: "k1", TerminalID: "T1", AuthorizationID: "A1", Amount: Money{MinorUnits: 600, Currency: "NZD"}}
		for _, f := range tweak {
			f(r)
		}
		return r
	}
	pol := &Policy{TerminalID: "T1", MerchantID: "M1", MerchantCurrency: "NZD"}
	suspended := &Policy{TerminalID: "T1", MerchantID: "M1", MerchantCurrency: "NZD", Suspended: true}
	view := func(tweak ...func(*tx)) captureView {
		p := &tx{seq: 7, kind: TxKindPreauth, terminal: "T1", merchant: "M1", amount: 1000, currency: "NZD", decision: DecisionApproved, decided: decided}
		for _, f := range tweak {
			f(p)
		}
		return captureView{preauth: p, now: decided + int64(time.Hour)}
	}
	fp := fingerprint{1}
	approved := captureDecision{code: CodeApproved}
	tests := []struct {
		name string
		req  *CaptureRequest
		pol  *Policy
		view captureView
		want captureDecision
	}{
		{"partial", req(), pol, view(), approved},
		{"full", req(func(r *CaptureRequest) { r.Amount.MinorUnits = 1000 }), pol, view(), approved},
		{"replay", req(), suspended, captureView{entry: &entry{entryRec: entryRec{kind: opCapture, fp: fp}}}, captureDecision{replay: true}},
		{"request ID of a different Capture", req(), pol,
			captureView{entry: &entry{entryRec: entryRec{kind: opCapture, fp: fingerprint{2}}}}, captureDecision{code: CodeDuplicateTransmission, duplicate: true}},
		{"request ID of a Refund", req(), pol,
			captureView{entry: &entry{entryRec: entryRec{kind: opRefund, fp: fp}}}, captureDecision{code: CodeDuplicateTransmission, duplicate: true}},
		{"reversed before it arrived", req(), pol, captureView{tombstone: true}, captureDecision{code: CodeInvalidTransaction, consumeTomb: true}},
		{"suspended", req(), suspended, view(), captureDecision{code: CodeNotPermitted}},
		{"unknown or invisible pre-auth", req(), pol, captureView{}, captureDecision{code: CodeInvalidTransaction}},
		{"a sale", req(), pol, view(func(p *tx) { p.kind = TxKindSale }), captureDecision{code: CodeInvalidTransaction}},
		{"declined pre-auth", req(), pol, view(func(p *tx) { p.decision = DecisionDeclined }), captureDecision{code: CodeInvalidTransaction}},
		{"another terminal's pre-auth", req(), pol, view(func(p *tx) { p.terminal = "T2" }), captureDecision{code: CodeNotPermitted}},
		{"reversed pre-auth", req(), pol, view(func(p *tx) { p.reversed = true }), captureDecision{code: CodeInvalidTransaction}},
		{"already captured", req(), pol, view(func(p *tx) { p.captured = 1 }), captureDecision{code: CodeInvalidTransaction}},
		{"expired", req(), pol, view(func(p *tx) { p.decided -= int64(validity) }), captureDecision{code: CodeInvalidTransaction}},
		{"just valid", req(), pol, view(func(p *tx) { p.decided -= int64(validity - time.Hour) }), approved},
		{"zero", req(func(r *CaptureRequest) { r.Amount.MinorUnits = 0 }), pol, view(), captureDecision{code: CodeInvalidAmount}},
		{"over the pre-auth", req(func(r *CaptureRequest) { r.Amount.MinorUnits = 1001 }), pol, view(), captureDecision{code: CodeInvalidAmount}},
		{"other currency", req(func(r *CaptureRequest) { r.Amount.Currency = "AUD" }), pol, view(), captureDecision{code: CodeInvalidAmount}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before tx
			if tt.view.preauth != nil {
				before = *tt.view.preauth
			}
			got := decideCapture(tt.req, fp, tt.pol, validity, &tt.view)
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if tt.view.preauth != nil && *tt.view.preauth != before {
				t.Errorf("the decision changed the pre-auth: got %+v, want %+v", *tt.view.preauth, before)
			}
		})
	}
}

// A transaction record written before captures existed ends before the
// captured amount; it still decodes, as not captured.
func TestTxRecordWithoutCapturedAmount(t *testing.T) {
	pre := &tx{seq: 7, kind: TxKindPreauth, terminal: "T1", merchant: "M1", amount: 1000, currency: "NZD", decision: DecisionApproved}
	rec := pre.encode()
	old := rec[:len(rec)-1] // captured 0 is one varint byte
	got, err := decodeTx(old)
	if err != nil {
		t.Fatalf("decode a record without the captured amount: %v", err)
	}
	if *got != *pre {
		t.Errorf("got %+v, want %+v", *got, *pre)
	}
	pre.captured = 600
	if got, err := decodeTx(pre.encode()); err != nil || got.captured != 600 {
		t.Errorf("captured pre-auth: got %+v, %v; want captured 600", got, err)
	}
}
