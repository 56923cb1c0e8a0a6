package payment

import "testing"

// TestDecideClose drives the pure CloseBatch decision through every
// outcome, without an engine or a store.
func TestDecideClose(t *testing.T) {
	fp := fingerprint{1}
	server := BatchTotals{Currency: "NZD", SaleCount: 2, SaleAmount: 3000, RefundCount: 1, RefundAmount: 500}
	open := &batchState{number: 4, state: BatchStateOpen, totals: server}
	req := func(number uint64, tt BatchTotals) *CloseBatchRequest {
		return &CloseBatchRequest{RequestID: "c1", TerminalID: "T1", BatchNumber: number, TerminalTotals: tt}
	}
	noCurrency := server
	noCurrency.Currency = ""
	short := server
	short.SaleAmount--
	other := server
	other.Currency = "AUD"
	tests := []struct {
		name    string
		req     *CloseBatchRequest
		view    closeView
		want    closeDecision
		wantErr error
	}{
		{name: "in balance", req: req(4, server), view: closeView{batch: open},
			want: closeDecision{totals: server, inBalance: true}},
		{name: "terminal names no currency", req: req(4, noCurrency), view: closeView{batch: open},
			want: closeDecision{totals: server, inBalance: true}},
		{name: "amounts differ", req: req(4, short), view: closeView{batch: open},
			want: closeDecision{totals: short}},
		{name: "currency differs", req: req(4, other), view: closeView{batch: open},
			want: closeDecision{totals: other}},
		{name: "replay", req: req(4, server),
			view: closeView{entry: &entry{entryRec: entryRec{kind: opCloseBatch, fp: fp}, close: &CloseBatchResult{}}},
			want: closeDecision{replay: true}},
		{name: "request ID of a different CloseBatch", req: req(4, server),
			view:    closeView{entry: &entry{entryRec: entryRec{kind: opCloseBatch, fp: fingerprint{2}}, close: &CloseBatchResult{}}},
			wantErr: ErrRequestIDReused},
		{name: "request ID of an Authorize", req: req(4, server),
			view:    closeView{entry: &entry{entryRec: entryRec{kind: opAuthorize, fp: fp}}},
			wantErr: ErrRequestIDReused},
		{name: "not the open batch", req: req(3, server), view: closeView{batch: open},
			wantErr: &BatchMismatchError{Requested: 3, Open: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := *open
			got := decideClose(tt.req, fp, &tt.view)
			if tt.wantErr != nil {
				if got.err == nil || got.err.Error() != tt.wantErr.Error() {
					t.Errorf("got error %v, want %v", got.err, tt.wantErr)
				}
				got.err = nil
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if *open != before {
				t.Errorf("the decision changed the open batch: got %+v, want %+v", *open, before)
			}
		})
	}
}
