package payment

import (
	"unicode/utf8"

	"github.com/posfleet/posfleet/server/pan"
)

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

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
	case pan.Contains(id):
		return &ValidationError{Field: field, Reason: pan.Reason}
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
	case pan.Contains(c.Token):
		out = append(out, &ValidationError{Field: "card.token", Reason: pan.Reason + "; send the payment token, never the PAN"})
	case hasControl(c.Token):
		out = append(out, &ValidationError{Field: "card.token", Reason: "must not contain control characters or spaces"})
	}
	if c.MaskedPAN != "" {
		if pan.Contains(c.MaskedPAN) {
			out = append(out, &ValidationError{Field: "card.masked_pan", Reason: pan.Reason + "; mask all but the first 6 and last 4 digits"})
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
	return checkFollowUp(r.TerminalID, r.RequestID, r.AuthorizationID, r.Amount)
}

// checkFollowUp checks a request that names an earlier authorization by its
// ID with an amount: a Refund or a Capture.
func checkFollowUp(terminalID, requestID, authorizationID string, amount Money) error {
	if err := checkTerminal(terminalID); err != nil {
		return err
	}
	if err := checkRequestID("request_id", requestID); err != nil {
		return err
	}
	if authorizationID == "" {
		return &ValidationError{Field: "authorization_id", Reason: "is required"}
	}
	if len(authorizationID) > 64 || !isAlnum(authorizationID) {
		return &ValidationError{Field: "authorization_id", Reason: "must be an authorization ID returned by Authorize"}
	}
	return checkMoney("amount", amount)
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
