package payment_test

import (
	"testing"

	"github.com/posfleet/posfleet/server/payment"
)

func TestLimitIn(t *testing.T) {
	tests := []struct {
		name             string
		minor            int64
		currency, settle string
		want             payment.Limit
		wantOK           bool
	}{
		{"same currency", 5000, "NZD", "NZD", payment.LimitOf(5000), true},
		{"zero limit", 0, "NZD", "NZD", payment.LimitOf(0), true},
		{"other currency fails closed", 5000, "AUD", "NZD", payment.LimitOf(0), false},
		{"merchant without currency", 5000, "NZD", "", payment.LimitOf(0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := payment.LimitIn(tt.minor, tt.currency, tt.settle)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("got %+v, %v; want %+v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
