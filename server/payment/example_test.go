package payment_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/payment"
	"github.com/posfleet/posfleet/server/store"
)

// policies is a fixed set of terminal policies; the server's directory
// reads them from the fleet and the effective config.
type policies map[string]payment.Policy

func (d policies) Policy(terminalID string) (payment.Policy, error) {
	p, ok := d[terminalID]
	if !ok {
		return payment.Policy{}, fmt.Errorf("terminal %s not found", terminalID)
	}
	return p, nil
}

// A sale approved, a test card declined, and a retry of the sale with the
// same request ID answered from the ledger instead of decided again.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "posfleet-payment-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	logger := slog.New(slog.DiscardHandler)
	db, err := store.Open(store.DefaultOptions(dir), logger)
	if err != nil {
		panic(err)
	}
	defer db.Close()
	auditLog, err := audit.Open(ctx, db, logger)
	if err != nil {
		panic(err)
	}
	defer auditLog.Close()

	terminals := policies{"T0000001": {
		TerminalID: "T0000001", MerchantID: "M1", StoreID: "S1",
		MerchantCurrency: "NZD", MerchantMCC: "5411",
	}}
	eng, err := payment.Open(ctx, db, auditLog, terminals, payment.DefaultOptions(), logger)
	if err != nil {
		panic(err)
	}
	defer eng.Close()

	sale := payment.AuthorizeRequest{
		TerminalID: "T0000001", RequestID: "9b2c6f1e-0001", MerchantID: "M1",
		Amount:  payment.Money{MinorUnits: 1250, Currency: "NZD"},
		Card:    payment.Card{Token: "tok_a1", MaskedPAN: "411111******1111", EntryMode: payment.EntryModeContactless},
		Capture: true,
	}
	nsf := sale
	nsf.RequestID, nsf.Card.Token = "9b2c6f1e-0002", "tok_test_nsf"
	for _, req := range []payment.AuthorizeRequest{sale, nsf, sale} {
		// err: a malformed request (*ValidationError), an unknown terminal,
		// or the engine could not decide (ErrUnavailable, ErrClosed, context
		// errors). Declines are results, not errors.
		res, err := eng.Authorize(ctx, req)
		if err != nil {
			panic(err)
		}
		fmt.Println(res.ResponseCode, res.Message, "replayed:", res.Replayed)
	}
	// Output:
	// 00 approved replayed: false
	// 51 insufficient funds replayed: false
	// 00 approved replayed: true
}
