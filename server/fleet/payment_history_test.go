package fleet_test

import (
	"context"
	"errors"
	"testing"

	"github.com/posfleet/posfleet/server/fleet"
)

// fakeHistory is a payment history with a fixed answer.
type fakeHistory struct {
	has   bool
	err   error
	calls int
}

func (h *fakeHistory) MerchantHasPayments(_ context.Context, merchantID string) (bool, error) {
	h.calls++
	return h.has, h.err
}

// A merchant's currency is fixed by its first payment: its ledger, batches
// and settlement reports are in that currency.
func TestMerchantCurrencyFixedByPayments(t *testing.T) {
	errLedger := errors.New("ledger unreadable")
	tests := []struct {
		name      string
		history   *fakeHistory // nil: not connected
		currency  string
		wantErr   error
		wantCalls int
		want      string // currency after the update
	}{
		{"no payment history", nil, "AUD", nil, 0, "AUD"},
		{"no payments", &fakeHistory{}, "AUD", nil, 1, "AUD"},
		{"payments", &fakeHistory{has: true}, "AUD", fleet.ErrMerchantHasPayments, 1, "NZD"},
		{"payments, same currency", &fakeHistory{has: true}, "NZD", nil, 0, "NZD"},
		{"history fails", &fakeHistory{err: errLedger}, "AUD", errLedger, 1, "NZD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.merchant("M1")
			if tt.history != nil {
				e.f.SetPaymentHistory(tt.history)
			}
			_, err := e.f.UpdateMerchant(t.Context(), "M1", fleet.MerchantUpdate{Currency: &tt.currency}, admin)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if tt.history != nil && tt.history.calls != tt.wantCalls {
				t.Errorf("got %d history calls, want %d", tt.history.calls, tt.wantCalls)
			}
			m, err := e.f.Merchant("M1")
			if err != nil {
				t.Fatal(err)
			}
			if m.Currency != tt.want {
				t.Errorf("got currency %s, want %s", m.Currency, tt.want)
			}
		})
	}
}
