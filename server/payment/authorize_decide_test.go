package payment

import (
	"testing"
	"time"
)

// TestDecideAuthorize drives the pure Authorize decision through every
// response-code path and every effect, without an engine or a store.
func TestDecideAuthorize(t *testing.T) {
	const merchant = "M1"
	req := func(tweak ...func(*AuthorizeRequest)) *AuthorizeRequest {
		r := &AuthorizeRequest{
			RequestID:  "r1",
			TerminalID: "T1",
			MerchantID: merchant,
			Amount:     Money{MinorUnits: 1000, Currency: "NZD"},
			Card:       Card{Token: "tok_ok", EntryMode: EntryModeChip},
			Capture:    true,
		}
		for _, f := range tweak {
			f(r)
		}
		return r
	}
	pol := func(tweak ...func(*Policy)) *Policy {
		p := &Policy{TerminalID: "T1", MerchantID: merchant, StoreID: "S1", MerchantCurrency: "NZD", MerchantMCC: "5411"}
		for _, f := range tweak {
			f(p)
		}
		return p
	}
	velocity := func(p *Policy) { p.VelocityLimit, p.VelocityWindow = 2, time.Hour }
	fp := fingerprint{1}
	same := &entry{entryRec: entryRec{kind: opAuthorize, fp: fp}}
	tests := []struct {
		name string
		req  *AuthorizeRequest
		pol  *Policy
		view authView
		want authDecision
	}{
		{name: "approved", req: req(), pol: pol(), want: authDecision{code: CodeApproved}},
		{name: "replay", req: req(), pol: pol(), view: authView{entry: same},
			want: authDecision{replay: true}},
		{name: "replay of a suspended terminal", req: req(), pol: pol(func(p *Policy) { p.Suspended = true }),
			view: authView{entry: same}, want: authDecision{replay: true}},
		{name: "request ID of a different Authorize", req: req(), pol: pol(),
			view: authView{entry: &entry{entryRec: entryRec{kind: opAuthorize, fp: fingerprint{2}}}},
			want: authDecision{code: CodeDuplicateTransmission, duplicate: true}},
		{name: "request ID of a Reverse", req: req(), pol: pol(),
			view: authView{entry: &entry{entryRec: entryRec{kind: opReverse, fp: fp}}},
			want: authDecision{code: CodeDuplicateTransmission, duplicate: true}},
		{name: "duplicate beats tombstone", req: req(), pol: pol(),
			view: authView{entry: &entry{entryRec: entryRec{kind: opRefund}}, tombstone: true},
			want: authDecision{code: CodeDuplicateTransmission, duplicate: true}},
		{name: "duplicate with a foreign merchant is audited", req: req(func(r *AuthorizeRequest) { r.MerchantID = "M2" }), pol: pol(),
			view: authView{entry: &entry{entryRec: entryRec{kind: opRefund}}},
			want: authDecision{code: CodeDuplicateTransmission, duplicate: true, mismatch: mismatchClaimed}},
		{name: "reversed before it arrived", req: req(), pol: pol(), view: authView{tombstone: true},
			want: authDecision{code: CodeInvalidTransaction, consumeTomb: true}},
		{name: "suspended", req: req(), pol: pol(func(p *Policy) { p.Suspended = true }),
			want: authDecision{code: CodeNotPermitted}},
		{name: "suspended with a foreign merchant is audited", req: req(func(r *AuthorizeRequest) { r.MerchantID = "M2" }),
			pol:  pol(func(p *Policy) { p.Suspended = true }),
			want: authDecision{code: CodeNotPermitted, mismatch: mismatchClaimed}},
		{name: "claimed merchant is not the binding", req: req(func(r *AuthorizeRequest) { r.MerchantID = "M2" }), pol: pol(),
			want: authDecision{code: CodeInvalidMerchant, mismatch: mismatchClaimed}},
		{name: "MCC in the merchant ID differs",
			req:  req(func(r *AuthorizeRequest) { r.MerchantID = "123456759990001" }),
			pol:  pol(func(p *Policy) { p.MerchantID = "123456759990001" }),
			want: authDecision{code: CodeInvalidMerchant, mismatch: "MCC embedded in the merchant ID differs from the merchant's MCC"}},
		{name: "MCC in the merchant ID matches",
			req:  req(func(r *AuthorizeRequest) { r.MerchantID = "123456754110001" }),
			pol:  pol(func(p *Policy) { p.MerchantID = "123456754110001" }),
			want: authDecision{code: CodeApproved}},
		{name: "zero amount", req: req(func(r *AuthorizeRequest) { r.Amount.MinorUnits = 0 }), pol: pol(),
			want: authDecision{code: CodeInvalidAmount}},
		{name: "amount beyond MaxAmount", req: req(func(r *AuthorizeRequest) { r.Amount.MinorUnits = MaxAmount + 1 }), pol: pol(),
			want: authDecision{code: CodeInvalidAmount}},
		{name: "amount of MaxAmount", req: req(func(r *AuthorizeRequest) { r.Amount.MinorUnits = MaxAmount }), pol: pol(),
			want: authDecision{code: CodeApproved}},
		{name: "other currency", req: req(func(r *AuthorizeRequest) { r.Amount.Currency = "AUD" }), pol: pol(),
			want: authDecision{code: CodeInvalidAmount}},
		{name: "entry mode not accepted", req: req(),
			pol:  pol(func(p *Policy) { p.AcceptedEntryModes = []EntryMode{EntryModeContactless} }),
			want: authDecision{code: CodeInvalidTransaction}},
		{name: "entry mode accepted", req: req(),
			pol:  pol(func(p *Policy) { p.AcceptedEntryModes = []EntryMode{EntryModeContactless, EntryModeChip} }),
			want: authDecision{code: CodeApproved}},
		{name: "over the per-transaction limit", req: req(), pol: pol(func(p *Policy) { p.PerTransactionLimit = LimitOf(999) }),
			want: authDecision{code: CodeExceedsAmountLimit}},
		{name: "at the per-transaction limit", req: req(), pol: pol(func(p *Policy) { p.PerTransactionLimit = LimitOf(1000) }),
			want: authDecision{code: CodeApproved}},
		{name: "over the daily limit", req: req(), pol: pol(func(p *Policy) { p.DailyLimit = LimitOf(5000) }),
			view: authView{dayApproved: 4001}, want: authDecision{code: CodeExceedsAmountLimit}},
		{name: "reaching the daily limit", req: req(), pol: pol(func(p *Policy) { p.DailyLimit = LimitOf(5000) }),
			view: authView{dayApproved: 4000}, want: authDecision{code: CodeApproved}},
		{name: "daily limit of zero", req: req(), pol: pol(func(p *Policy) { p.DailyLimit = LimitOf(0) }),
			want: authDecision{code: CodeExceedsAmountLimit}},
		{name: "velocity reached", req: req(), pol: pol(velocity), view: authView{cardApprovals: 2},
			want: authDecision{code: CodeExceedsFrequency}},
		{name: "velocity below the limit counts the approval", req: req(), pol: pol(velocity), view: authView{cardApprovals: 1},
			want: authDecision{code: CodeApproved, trackCard: true}},
		{name: "velocity rule without a window", req: req(),
			pol:  pol(func(p *Policy) { p.VelocityLimit = 1 }),
			view: authView{cardApprovals: 5}, want: authDecision{code: CodeApproved}},
		{name: "an issuer decline under a velocity rule is not counted", req: req(func(r *AuthorizeRequest) { r.Card.Token = "tok_test_nsf" }),
			pol: pol(velocity), want: authDecision{code: CodeInsufficientFunds}},
		{name: "issuer: do not honour", req: req(func(r *AuthorizeRequest) { r.Card.Token = "tok_test_decline" }), pol: pol(),
			want: authDecision{code: CodeDoNotHonour}},
		{name: "issuer: invalid card", req: req(func(r *AuthorizeRequest) { r.Card.Token = "tok_test_invalid_7" }), pol: pol(),
			want: authDecision{code: CodeInvalidCard}},
		{name: "issuer: expired card", req: req(func(r *AuthorizeRequest) { r.Card.Token = "tok_test_expired" }), pol: pol(),
			want: authDecision{code: CodeExpiredCard}},
		{name: "issuer: system error", req: req(func(r *AuthorizeRequest) { r.Card.Token = "tok_test_system_error" }), pol: pol(),
			want: authDecision{code: CodeSystemError}},
		{name: "pre-auth approved", req: req(func(r *AuthorizeRequest) { r.Capture = false }), pol: pol(),
			want: authDecision{code: CodeApproved}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			view := tt.view
			got := decideAuthorize(tt.req, fp, tt.pol, &view)
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if view != tt.view {
				t.Errorf("the decision changed its view: got %+v, want %+v", view, tt.view)
			}
		})
	}
}
