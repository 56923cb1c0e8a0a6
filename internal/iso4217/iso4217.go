// Package iso4217 tells real currency codes from look-alikes. It answers
// from the ISO 4217 table maintained in golang.org/x/text/currency: a code
// is valid when it is written in upper case and is legal tender in some
// country today, which leaves out withdrawn currencies (DEM), the funds and
// precious-metal codes (XAU, XDR) and the test and "no currency" codes (XTS,
// XXX).
package iso4217

import (
	"sync"
	"time"

	"golang.org/x/text/currency"
)

var tender = sync.OnceValue(func() map[string]bool {
	set := map[string]bool{}
	it := currency.Query(currency.Date(time.Now()))
	for it.Next() {
		set[it.Unit().String()] = true
	}
	return set
})

// Valid reports whether code is the upper-case ISO 4217 alphabetic code of a
// currency that is legal tender today, e.g. "NZD".
func Valid(code string) bool {
	return len(code) == 3 && tender()[code]
}
