package payment

import (
	"unicode/utf8"
)

// LooksLikePAN reports whether s looks like a full card number: 13 to 19
// digits, optionally grouped by single spaces or dashes, passing the Luhn
// check. Such values are refused wherever a card reference or an identifier
// is accepted, so that a card number can never be stored or logged.
func LooksLikePAN(s string) bool {
	if len(s) < 13 || len(s) > 19+18 {
		return false
	}
	digits := make([]byte, 0, 19)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if len(digits) == 19 {
				return false
			}
			digits = append(digits, c)
		case (c == ' ' || c == '-') && i > 0 && i < len(s)-1 && isDigit(s[i-1]) && isDigit(s[i+1]):
		default:
			return false
		}
	}
	return len(digits) >= 13 && luhn(digits)
}

// ContainsPAN reports whether s is or holds something that looks like a
// full card number (see [LooksLikePAN] and containsPAN). A UUID in its
// canonical form never does: its segments that happen to be all digits line
// up as a card number printed in groups of four for about 1 random UUID in
// 2,700, and refusing those would refuse the idempotency keys and tokens
// clients are told to use. Only a deliberately built UUID can carry a card
// number, and the check is there to catch mistakes, not intent.
func ContainsPAN(s string) bool { return !isUUID(s) && (LooksLikePAN(s) || containsPAN(s)) }

// isUUID reports whether s is a UUID in canonical form: 8-4-4-4-12 hex
// digits of either case, any version.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isDigit(c) && (c|0x20 < 'a' || c|0x20 > 'f') {
				return false
			}
		}
	}
	return true
}

// containsPAN reports whether s holds a card number passing the Luhn check:
// a run of 13 to 19 consecutive digits delimited by non-digits, such as in
// "tok_4111111111111111" or "4111111111111111-1", or digit groups separated
// by single spaces or dashes the way card numbers are printed: groups of
// four with a last group of one to four digits ("4111-1111-1111-1111",
// "4111 1111 1111 1111"), or 4-6-5 and 4-6-4 digits.
func containsPAN(s string) bool {
	// groups holds the start and end of each run of digits; a run follows
	// the previous one when a single space or dash separates them.
	var groups [][2]int
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if n := j - i; n >= 13 && n <= 19 && luhn([]byte(s[i:j])) {
			return true
		}
		if len(groups) > 0 && (i < 2 || groups[len(groups)-1][1] != i-1 || (s[i-1] != ' ' && s[i-1] != '-')) {
			if groupedPAN(s, groups) {
				return true
			}
			groups = groups[:0]
		}
		groups = append(groups, [2]int{i, j})
		i = j
	}
	return groupedPAN(s, groups)
}

// groupedPAN reports whether consecutive groups (digit runs of s separated
// by single spaces or dashes) hold a card number in a printed layout.
func groupedPAN(s string, groups [][2]int) bool {
	size := func(g [2]int) int { return g[1] - g[0] }
	digits := make([]byte, 0, 19)
	check := func(gs [][2]int) bool {
		digits = digits[:0]
		for _, g := range gs {
			digits = append(digits, s[g[0]:g[1]]...)
		}
		return len(digits) >= 13 && len(digits) <= 19 && luhn(digits)
	}
	for a := 0; a+1 < len(groups); a++ {
		if size(groups[a]) != 4 {
			continue
		}
		// 4-4-4-4 and the like: fours, then a last group of 1-4.
		for b := a + 1; b < len(groups) && b-a < 5; b++ {
			if n := size(groups[b]); n < 1 || n > 4 {
				break
			}
			if check(groups[a : b+1]) {
				return true
			}
			if size(groups[b]) != 4 {
				break
			}
		}
		// 4-6-5 and 4-6-4.
		if a+2 < len(groups) && size(groups[a+1]) == 6 {
			if n := size(groups[a+2]); (n == 4 || n == 5) && check(groups[a:a+3]) {
				return true
			}
		}
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// luhn reports whether the digits pass the Luhn (mod 10) check.
func luhn(digits []byte) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// validRequestID reports whether id is 1-64 characters of letters, digits,
// '-', '_', '.' or ':'.
func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || isDigit(c) || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// checkRequestID validates an idempotency key field.
func checkRequestID(field, id string) error {
	switch {
	case id == "":
		return &ValidationError{Field: field, Reason: "is required"}
	case !validRequestID(id):
		return &ValidationError{Field: field, Reason: "must be 1-64 letters, digits, '-', '_', '.' or ':'"}
	case ContainsPAN(id):
		return &ValidationError{Field: field, Reason: "looks like or contains a card number; card numbers are never accepted"}
	}
	return nil
}

// CheckCard returns every problem of a card's fields, in field order (nil
// for a well-formed card): a token, masked PAN or entry mode that is
// missing or malformed, and above all any value that looks like a card
// number. The transport layer reports them as field violations.
func CheckCard(c Card) []*ValidationError {
	var out []*ValidationError
	switch {
	case c.Token == "":
		out = append(out, &ValidationError{Field: "card.token", Reason: "is required"})
	case !utf8.ValidString(c.Token) || utf8.RuneCountInString(c.Token) > 128:
		out = append(out, &ValidationError{Field: "card.token", Reason: "must be 1-128 characters of valid UTF-8"})
	case ContainsPAN(c.Token):
		out = append(out, &ValidationError{Field: "card.token", Reason: "looks like a card number; send the payment token, never the PAN"})
	case hasControl(c.Token):
		out = append(out, &ValidationError{Field: "card.token", Reason: "must not contain control characters or spaces"})
	}
	if c.MaskedPAN != "" {
		if ContainsPAN(c.MaskedPAN) {
			out = append(out, &ValidationError{Field: "card.masked_pan", Reason: "looks like a full card number; mask all but the first 6 and last 4 digits"})
		} else if !validMaskedPAN(c.MaskedPAN) {
			out = append(out, &ValidationError{Field: "card.masked_pan", Reason: "must be the first 6 and last 4 digits with 3-9 '*' between"})
		}
	}
	if !c.EntryMode.valid() {
		out = append(out, &ValidationError{Field: "card.entry_mode", Reason: "must be one of CHIP, CONTACTLESS, SWIPE, MANUAL, QR"})
	}
	return out
}

// checkCard returns the first problem of a card, or nil.
func checkCard(c Card) error {
	if errs := CheckCard(c); len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// hasControl reports whether s has ASCII control characters or spaces.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// validMaskedPAN reports whether s is 6 digits, 3-9 '*', 4 digits.
func validMaskedPAN(s string) bool {
	if len(s) < 13 || len(s) > 19 {
		return false
	}
	for i := 0; i < len(s); i++ {
		inMask := i >= 6 && i < len(s)-4
		if inMask != (s[i] == '*') || !inMask && !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// checkMoney validates that an amount carries a well-formed currency code.
// Non-positive amounts and foreign currencies are declines (13), not
// malformed requests; a missing or malformed currency code is malformed.
func checkMoney(field string, m Money) error {
	c := m.Currency
	if len(c) != 3 || !isUpper(c[0]) || !isUpper(c[1]) || !isUpper(c[2]) {
		return &ValidationError{Field: field + ".currency", Reason: "must be a 3-letter ISO 4217 code such as USD"}
	}
	return nil
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// checkTerminal validates the terminal ID set by the caller.
func checkTerminal(id string) error {
	if id == "" || len(id) > 64 || hasControl(id) || !utf8.ValidString(id) || id != cleanKeyPart(id) {
		return &ValidationError{Field: "terminal_id", Reason: "must be a terminal ID"}
	}
	return nil
}

// cleanKeyPart returns s unless it contains '/', which would break key
// prefixes.
func cleanKeyPart(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return ""
		}
	}
	return s
}

func (r *AuthorizeRequest) validate() error {
	if err := checkTerminal(r.TerminalID); err != nil {
		return err
	}
	if err := checkRequestID("request_id", r.RequestID); err != nil {
		return err
	}
	if r.MerchantID == "" {
		return &ValidationError{Field: "merchant_id", Reason: "is required"}
	}
	if len(r.MerchantID) > 15 || !isAlnum(r.MerchantID) {
		return &ValidationError{Field: "merchant_id", Reason: "must be 1-15 letters and digits"}
	}
	if err := checkMoney("amount", r.Amount); err != nil {
		return err
	}
	return checkCard(r.Card)
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func (r *ReverseRequest) validate() error {
	if err := checkTerminal(r.TerminalID); err != nil {
		return err
	}
	if err := checkRequestID("request_id", r.RequestID); err != nil {
		return err
	}
	if err := checkRequestID("original_request_id", r.OriginalRequestID); err != nil {
		return err
	}
	if !r.Reason.valid() {
		return &ValidationError{Field: "reason", Reason: "must be TIMEOUT, CUSTOMER_CANCEL or DEVICE_FAULT"}
	}
	return nil
}

func (r *RefundRequest) validate() error {
	if err := checkTerminal(r.TerminalID); err != nil {
		return err
	}
	if err := checkRequestID("request_id", r.RequestID); err != nil {
		return err
	}
	if r.AuthorizationID == "" {
		return &ValidationError{Field: "authorization_id", Reason: "is required"}
	}
	if len(r.AuthorizationID) > 64 || !isAlnum(r.AuthorizationID) {
		return &ValidationError{Field: "authorization_id", Reason: "must be an authorization ID returned by Authorize"}
	}
	return checkMoney("amount", r.Amount)
}

func (r *CloseBatchRequest) validate() error {
	if err := checkTerminal(r.TerminalID); err != nil {
		return err
	}
	if err := checkRequestID("request_id", r.RequestID); err != nil {
		return err
	}
	if r.BatchNumber == 0 {
		return &ValidationError{Field: "batch_number", Reason: "is required (batches are numbered from 1)"}
	}
	t := r.TerminalTotals
	if t.SaleAmount < 0 || t.RefundAmount < 0 || t.ReversalAmount < 0 || t.PreauthAmount < 0 {
		return &ValidationError{Field: "terminal_totals", Reason: "amounts must not be negative"}
	}
	if t.Currency != "" {
		if err := checkMoney("terminal_totals.sale_amount", Money{Currency: t.Currency}); err != nil {
			return err
		}
	}
	return nil
}
