package payment_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/posfleet/posfleet/server/payment"
)

func TestValidation(t *testing.T) {
	v := newEnv(t)
	tests := []struct {
		name  string
		req   func(*payment.AuthorizeRequest)
		field string
	}{
		{"missing request ID", func(r *payment.AuthorizeRequest) { r.RequestID = "" }, "request_id"},
		{"request ID too long", func(r *payment.AuthorizeRequest) { r.RequestID = strings.Repeat("a", 65) }, "request_id"},
		{"request ID with a space", func(r *payment.AuthorizeRequest) { r.RequestID = "a b" }, "request_id"},
		{"request ID is a PAN", func(r *payment.AuthorizeRequest) { r.RequestID = "4111111111111111" }, "request_id"},
		{"request ID embeds a PAN", func(r *payment.AuthorizeRequest) { r.RequestID = "4111111111111111-1" }, "request_id"},
		{"request ID is a grouped PAN", func(r *payment.AuthorizeRequest) { r.RequestID = "r-4111-1111-1111-1111" }, "request_id"},
		{"request ID is a dotted PAN", func(r *payment.AuthorizeRequest) { r.RequestID = "r.4111.1111.1111.1111" }, "request_id"},
		{"token has full-width digits", func(r *payment.AuthorizeRequest) {
			r.Card.Token = "tok_４１１１１１１１１１１１１１１１"
		}, "card.token"},
		{"token has an underscored PAN", func(r *payment.AuthorizeRequest) { r.Card.Token = "tok_4111_1111_1111_1111" }, "card.token"},
		{"missing merchant", func(r *payment.AuthorizeRequest) { r.MerchantID = "" }, "merchant_id"},
		{"merchant ID too long", func(r *payment.AuthorizeRequest) { r.MerchantID = "1234567890123456" }, "merchant_id"},
		{"missing currency", func(r *payment.AuthorizeRequest) { r.Amount.Currency = "" }, "amount.currency"},
		{"lower-case currency", func(r *payment.AuthorizeRequest) { r.Amount.Currency = "nzd" }, "amount.currency"},
		{"missing token", func(r *payment.AuthorizeRequest) { r.Card.Token = "" }, "card.token"},
		{"token is a PAN", func(r *payment.AuthorizeRequest) { r.Card.Token = "4111111111111111" }, "card.token"},
		{"token is a grouped PAN", func(r *payment.AuthorizeRequest) { r.Card.Token = "4111-1111-1111-1111" }, "card.token"},
		{"token embeds a PAN", func(r *payment.AuthorizeRequest) { r.Card.Token = "tok_5500005555555559" }, "card.token"},
		{"token too long", func(r *payment.AuthorizeRequest) { r.Card.Token = strings.Repeat("t", 129) }, "card.token"},
		{"token with control characters", func(r *payment.AuthorizeRequest) { r.Card.Token = "tok\n1" }, "card.token"},
		{"masked PAN is a full PAN", func(r *payment.AuthorizeRequest) { r.Card.MaskedPAN = "4111111111111111" }, "card.masked_pan"},
		{"masked PAN badly masked", func(r *payment.AuthorizeRequest) { r.Card.MaskedPAN = "4111****11111111" }, "card.masked_pan"},
		{"masked PAN too short", func(r *payment.AuthorizeRequest) { r.Card.MaskedPAN = "4111**1111" }, "card.masked_pan"},
		{"missing entry mode", func(r *payment.AuthorizeRequest) { r.Card.EntryMode = payment.EntryModeUnspecified }, "card.entry_mode"},
		{"unknown entry mode", func(r *payment.AuthorizeRequest) { r.Card.EntryMode = 42 }, "card.entry_mode"},
		{"missing terminal", func(r *payment.AuthorizeRequest) { r.TerminalID = "" }, "terminal_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := sale(term1, "valid-1", 100)
			tt.req(&req)
			_, err := v.eng.Authorize(t.Context(), req)
			var ve *payment.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, payment.ErrInvalid) {
				t.Fatalf("got %v, want a ValidationError", err)
			}
			if ve.Field != tt.field {
				t.Errorf("field: got %q, want %q", ve.Field, tt.field)
			}
			if strings.Contains(err.Error(), "4111111111111111") || strings.Contains(err.Error(), "5500005555555559") {
				t.Errorf("error echoes the card number: %v", err)
			}
		})
	}
	// Nothing malformed reached the ledger.
	if txs := v.transactions(payment.TxFilter{}); len(txs) != 0 {
		t.Errorf("ledger after malformed requests: got %d transactions, want 0", len(txs))
	}

	other := []struct {
		name  string
		call  func() error
		field string
	}{
		{"reverse without reason", func() error {
			_, err := v.eng.Reverse(t.Context(), payment.ReverseRequest{TerminalID: term1, RequestID: "r", OriginalRequestID: "o"})
			return err
		}, "reason"},
		{"reverse without original", func() error {
			_, err := v.eng.Reverse(t.Context(), payment.ReverseRequest{TerminalID: term1, RequestID: "r", Reason: payment.ReversalReasonTimeout})
			return err
		}, "original_request_id"},
		{"refund without authorization", func() error {
			_, err := v.eng.Refund(t.Context(), payment.RefundRequest{TerminalID: term1, RequestID: "r", Amount: payment.Money{MinorUnits: 1, Currency: cur}})
			return err
		}, "authorization_id"},
		{"refund without currency", func() error {
			_, err := v.eng.Refund(t.Context(), payment.RefundRequest{TerminalID: term1, RequestID: "r", AuthorizationID: "A0000000000000001", Amount: payment.Money{MinorUnits: 1}})
			return err
		}, "amount.currency"},
		{"close without batch number", func() error {
			_, err := v.eng.CloseBatch(t.Context(), payment.CloseBatchRequest{TerminalID: term1, RequestID: "r"})
			return err
		}, "batch_number"},
		{"close with negative totals", func() error {
			_, err := v.eng.CloseBatch(t.Context(), payment.CloseBatchRequest{TerminalID: term1, RequestID: "r", BatchNumber: 1,
				TerminalTotals: payment.BatchTotals{SaleAmount: -1}})
			return err
		}, "terminal_totals"},
		{"list batch without terminal", func() error {
			_, _, err := v.eng.ListTransactions(t.Context(), payment.TxFilter{BatchNumber: 1}, 10, "")
			return err
		}, "batch_number"},
		{"settlement with a bad date", func() error {
			_, err := v.eng.SettlementReport(t.Context(), merch, "2026-02-30")
			return err
		}, "business_date"},
	}
	for _, tt := range other {
		t.Run(tt.name, func(t *testing.T) {
			var ve *payment.ValidationError
			if err := tt.call(); !errors.As(err, &ve) || ve.Field != tt.field {
				t.Fatalf("got %v, want a ValidationError on %s", err, tt.field)
			}
		})
	}
	if _, _, err := v.eng.ListTransactions(t.Context(), payment.TxFilter{}, 10, "%%%"); !errors.Is(err, payment.ErrBadPageToken) {
		t.Errorf("bad page token: got %v, want ErrBadPageToken", err)
	}
}

func TestTestCardCode(t *testing.T) {
	tests := []struct {
		token    string
		code     string
		declined bool
	}{
		{"tok_test_decline", "05", true},
		{"tok_test_decline_7", "05", true},
		{"tok_test_invalid", "14", true},
		{"tok_test_nsf", "51", true},
		{"tok_test_expired_2026", "54", true},
		{"tok_test_system_error", "96", true},
		{"tok_test_declined", "", false},
		{"tok_test_", "", false},
		{"tok_live_nsf", "", false},
		{"tok_test_nsf", "51", true},
	}
	for _, tt := range tests {
		code, declined := payment.TestCardCode(tt.token)
		if code != tt.code || declined != tt.declined {
			t.Errorf("TestCardCode(%q): got %q, %v; want %q, %v", tt.token, code, declined, tt.code, tt.declined)
		}
	}
}
