package payment

import "testing"

// TestDecideReverse drives the pure Reverse decision through every
// outcome, without an engine or a store.
func TestDecideReverse(t *testing.T) {
	fp := fingerprint{1}
	authorized := &entry{entryRec: entryRec{kind: opAuthorize, txSeq: 7}}
	auth := func(tweak ...func(*tx)) *tx {
		a := &tx{seq: 7, kind: TxKindSale, amount: 1000, currency: "NZD", decision: DecisionApproved, batch: 3}
		for _, f := range tweak {
			f(a)
		}
		return a
	}
	tests := []struct {
		name string
		view reverseView
		want reverseDecision
	}{
		{name: "reversed", view: reverseView{original: authorized, auth: auth(), openBatch: 3},
			want: reverseDecision{status: ReverseStatusReversed}},
		{name: "pre-auth reversed", view: reverseView{original: authorized, auth: auth(func(a *tx) { a.kind = TxKindPreauth }), openBatch: 3},
			want: reverseDecision{status: ReverseStatusReversed}},
		{name: "replay", view: reverseView{entry: &entry{entryRec: entryRec{kind: opReverse, fp: fp}}},
			want: reverseDecision{replay: true}},
		{name: "request ID of a different Reverse", view: reverseView{entry: &entry{entryRec: entryRec{kind: opReverse, fp: fingerprint{2}}}},
			want: reverseDecision{err: ErrRequestIDReused}},
		{name: "request ID of an Authorize", view: reverseView{entry: &entry{entryRec: entryRec{kind: opAuthorize, fp: fp}}},
			want: reverseDecision{err: ErrRequestIDReused}},
		{name: "unknown original leaves a tombstone", view: reverseView{},
			want: reverseDecision{status: ReverseStatusOriginalNotFound, leaveTomb: true}},
		{name: "unknown original with a tombstone", view: reverseView{tombstone: true},
			want: reverseDecision{status: ReverseStatusOriginalNotFound}},
		{name: "original is a Reverse", view: reverseView{original: &entry{entryRec: entryRec{kind: opReverse}}},
			want: reverseDecision{status: ReverseStatusNotReversible}},
		{name: "original is a Refund", view: reverseView{original: &entry{entryRec: entryRec{kind: opRefund}}, openBatch: 3},
			want: reverseDecision{status: ReverseStatusNotReversible}},
		{name: "already reversed", view: reverseView{original: authorized, auth: auth(func(a *tx) { a.reversed = true }), openBatch: 3},
			want: reverseDecision{status: ReverseStatusAlreadyReversed}},
		{name: "declined", view: reverseView{original: authorized, auth: auth(func(a *tx) { a.decision = DecisionDeclined }), openBatch: 3},
			want: reverseDecision{status: ReverseStatusNotReversible}},
		{name: "partly refunded", view: reverseView{original: authorized, auth: auth(func(a *tx) { a.refunded = 1 }), openBatch: 3},
			want: reverseDecision{status: ReverseStatusNotReversible}},
		{name: "batch closed since", view: reverseView{original: authorized, auth: auth(), openBatch: 4},
			want: reverseDecision{status: ReverseStatusNotReversible}},
		{name: "no open batch", view: reverseView{original: authorized, auth: auth()},
			want: reverseDecision{status: ReverseStatusNotReversible}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before tx
			if tt.view.auth != nil {
				before = *tt.view.auth
			}
			got := decideReverse(fp, &tt.view)
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if tt.view.auth != nil && *tt.view.auth != before {
				t.Errorf("the decision changed the authorization: got %+v, want %+v", *tt.view.auth, before)
			}
		})
	}
}
