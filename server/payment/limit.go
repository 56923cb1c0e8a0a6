package payment

// LimitIn returns the limit that a limit of minorUnits configured in
// currency sets on a merchant settling in merchantCurrency. A limit in
// another currency cannot be compared with the merchant's payments: it
// fails closed, as a zero limit (every payment is declined with 61), and
// ok is false so that the caller can tell the operator.
func LimitIn(minorUnits int64, currency, merchantCurrency string) (l Limit, ok bool) {
	if currency != merchantCurrency {
		return LimitOf(0), false
	}
	return LimitOf(minorUnits), true
}
