package server

import (
	"math/rand/v2"
	"regexp"
	"testing"
)

// Each table-driven format accepts exactly what its regular expression
// would.
func TestCharFormatsMatchTheirRegexps(t *testing.T) {
	formats := []struct {
		f  *charFormat
		re string
	}{
		{merchantIDFormat, `^[A-Za-z0-9]{1,15}$`},
		{storeIDFormat, `^[A-Za-z0-9_-]{1,32}$`},
		{terminalIDFormat, `^[A-Z0-9]{8}$`},
		{requestIDFormat, `^[A-Za-z0-9._:-]{1,64}$`},
		{serialFormat, `^[\x21-\x7e]{1,64}$`},
		{mccFormat, `^[0-9]{4}$`},
		{countryFormat, `^[A-Z]{2}$`},
		{numericMIDFormat, `^[0-9]{15}$`},
		{paramKeyFormat, `^[A-Za-z0-9._-]{1,64}$`},
		{componentFormat, `^[\x21-\x7e]{1,32}$`},
		{tokenIDFormat, `^[A-Za-z0-9_-]{1,64}$`},
		{transactionIDFormat, `^[A-Za-z0-9]{1,64}$`},
	}
	// Strings of every length around the bounds, drawn from the allowed
	// characters with now and then one from outside (including a space,
	// controls, non-ASCII bytes and multi-byte UTF-8).
	rng := rand.New(rand.NewPCG(1, 2))
	odd := []string{" ", "\x00", "\n", "\x7f", "\xff", "é", "€", "/", "+", "$"}
	for _, tc := range formats {
		re := regexp.MustCompile(tc.re)
		var allowed []byte
		for c := range 256 {
			if tc.f.allowed[c] {
				allowed = append(allowed, byte(c))
			}
		}
		for n := 0; n <= tc.f.max+2; n++ {
			for range 200 {
				var b []byte
				for range n {
					if rng.IntN(40) == 0 {
						b = append(b, odd[rng.IntN(len(odd))]...)
					} else {
						b = append(b, allowed[rng.IntN(len(allowed))])
					}
				}
				s := string(b)
				if got, want := tc.f.MatchString(s), re.MatchString(s); got != want {
					t.Fatalf("%s: %q: table says %v, regexp %v", tc.re, s, got, want)
				}
			}
		}
	}
}

func TestNewCharFormatRejectsBadClasses(t *testing.T) {
	for _, chars := range []string{"z-a", "A-\xff"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("newCharFormat(%q) did not panic", chars)
				}
			}()
			newCharFormat(chars, 1, 2)
		}()
	}
}

func TestCurrencyCodesAreISO4217(t *testing.T) {
	for _, tc := range []struct {
		code string
		want bool
	}{{"NZD", true}, {"CNY", true}, {"XYZ", false}, {"XXX", false}, {"nzd", false}, {"NZ", false}, {"DEM", false}} {
		if got := currencyFormat.MatchString(tc.code); got != tc.want {
			t.Errorf("currency %q accepted %v, want %v", tc.code, got, tc.want)
		}
	}
}
