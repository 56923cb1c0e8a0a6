package payment

import "strings"

// TestCardPrefix starts every token of the issuer simulator's test cards.
const TestCardPrefix = "tok_test_"

// testCards are the issuer simulator's declining test cards (the README's
// test-card table is generated from it).
var testCards = []struct{ token, code string }{
	{"tok_test_decline", CodeDoNotHonour},
	{"tok_test_invalid", CodeInvalidCard},
	{"tok_test_nsf", CodeInsufficientFunds},
	{"tok_test_expired", CodeExpiredCard},
	{"tok_test_system_error", CodeSystemError},
}

// TestCardCode returns the response code the issuer simulator declines token
// with, and false for tokens it approves. A test-card token matches exactly
// or followed by "_" and any suffix, e.g. "tok_test_nsf_42".
func TestCardCode(token string) (code string, declined bool) {
	if !strings.HasPrefix(token, TestCardPrefix) {
		return "", false
	}
	for _, c := range testCards {
		if token == c.token || strings.HasPrefix(token, c.token) && token[len(c.token)] == '_' {
			return c.code, true
		}
	}
	return "", false
}

// issuerCode is the issuer simulator's answer for a card token.
func issuerCode(token string) string {
	if code, declined := TestCardCode(token); declined {
		return code
	}
	return CodeApproved
}
