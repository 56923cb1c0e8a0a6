package iso4217_test

import (
	"testing"

	"github.com/posfleet/posfleet/internal/iso4217"
)

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		code string
		want bool
	}{
		{"NZD", true}, {"USD", true}, {"EUR", true}, {"JPY", true}, {"CNY", true}, {"XOF", true}, {"XPF", true},
		{"nzd", false}, {"Nzd", false}, {"XYZ", false}, {"XXX", false}, {"XTS", false}, {"XAU", false},
		{"XDR", false}, {"DEM", false}, {"", false}, {"NZ", false}, {"NZDD", false},
	} {
		if got := iso4217.Valid(tc.code); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.code, got, tc.want)
		}
	}
}
