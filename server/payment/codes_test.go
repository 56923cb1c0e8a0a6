package payment

import (
	"bytes"
	"flag"
	"fmt"
	"testing"

	"github.com/posfleet/posfleet/internal/docgen"
)

var update = flag.Bool("update", false, "rewrite the README's generated sections instead of failing on drift")

// The texts go to terminals in every response: they must not change when
// the table moves.
func TestCodeMessage(t *testing.T) {
	tests := []struct{ code, want string }{
		{CodeApproved, "approved"},
		{CodeInvalidMerchant, "invalid merchant"},
		{CodeDoNotHonour, "do not honour"},
		{CodeInvalidTransaction, "invalid transaction"},
		{CodeInvalidAmount, "invalid amount"},
		{CodeInvalidCard, "invalid card"},
		{CodeInsufficientFunds, "insufficient funds"},
		{CodeExpiredCard, "expired card"},
		{CodeNotPermitted, "transaction not permitted to terminal"},
		{CodeExceedsAmountLimit, "exceeds amount limit"},
		{CodeExceedsFrequency, "exceeds frequency limit"},
		{CodeDuplicateTransmission, "duplicate transmission"},
		{CodeSystemError, "system error"},
		{"99", "unknown response code"},
		{"", "unknown response code"},
	}
	for _, tt := range tests {
		if got := CodeMessage(tt.code); got != tt.want {
			t.Errorf("CodeMessage(%q) = %q, want %q", tt.code, got, tt.want)
		}
	}
	if got, want := len(ResponseCodes()), len(tests)-2; got != want {
		t.Errorf("ResponseCodes() has %d codes, want %d", got, want)
	}
}

// ResponseCodes is in code order, each code once, each explained; every
// test card declines with a listed code.
func TestResponseCodesTable(t *testing.T) {
	listed := map[string]bool{}
	prev := ""
	for _, c := range ResponseCodes() {
		if c.Code <= prev {
			t.Errorf("code %q after %q: want ascending, each once", c.Code, prev)
		}
		prev = c.Code
		if c.Message == "" || c.When == "" {
			t.Errorf("code %q: message %q, when %q: want both", c.Code, c.Message, c.When)
		}
		listed[c.Code] = true
	}
	for _, c := range testCards {
		if !listed[c.code] {
			t.Errorf("test card %s declines with unlisted code %q", c.token, c.code)
		}
	}
}

// responseCodeTable renders ResponseCodes as a Markdown table.
func responseCodeTable() []byte {
	var b bytes.Buffer
	b.WriteString("| code | message | when |\n|---|---|---|\n")
	for _, c := range ResponseCodes() {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", c.Code, c.Message, c.When)
	}
	return b.Bytes()
}

// testCardTable renders the issuer simulator's test cards as a Markdown
// table.
func testCardTable() []byte {
	var b bytes.Buffer
	b.WriteString("| token | code | meaning |\n|---|---|---|\n")
	for _, c := range testCards {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", c.token, c.code, CodeMessage(c.code))
	}
	return b.Bytes()
}

// The README's response-code and test-card tables are generated from the
// engine's tables; run `go test ./server/payment/ -run TestREADMETables
// -update` after changing one.
func TestREADMETables(t *testing.T) {
	for _, s := range []struct {
		name string
		body []byte
	}{
		{"response-codes", responseCodeTable()},
		{"test-cards", testCardTable()},
	} {
		if err := docgen.Check("../../README.md", s.name, s.body, *update); err != nil {
			t.Error(err)
		}
	}
}
