package fleet_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/fleet"
	"github.com/posfleet/posfleet/server/store"
)

// A merchant, a store and a terminal provisioned by an operator; the
// terminal registers with its enrollment code and then authenticates with
// the credential it got.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "posfleet-fleet-example")
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

	opts := fleet.DefaultOptions()
	opts.NewSecret = server.NewSecret // 256 random bits after a prefix
	f, err := fleet.Open(ctx, db, auditLog, opts, logger)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	who := audit.Actor{Name: "admin:ops"}
	if _, err := f.CreateMerchant(ctx, fleet.Merchant{ID: "MID1", LegalName: "Kiwi Foods Ltd", MCC: "5411", Currency: "NZD"}, who); err != nil {
		panic(err)
	}
	if _, err := f.CreateStore(ctx, fleet.Store{MerchantID: "MID1", ID: "akl-01", Name: "Queen St"}, who); err != nil {
		panic(err)
	}
	p, err := f.Provision(ctx, fleet.ProvisionRequest{Serial: "SN1", MerchantID: "MID1", StoreID: "akl-01"}, who)
	if err != nil {
		panic(err)
	}
	reg, err := f.Register(ctx, fleet.RegisterRequest{Serial: "SN1", Code: p.EnrollmentCode})
	if err != nil {
		panic(err)
	}
	ref, err := f.Authenticate(reg.Credential)
	if err != nil {
		panic(err)
	}
	fmt.Println(ref.TerminalID == p.Terminal.ID, ref.MerchantID, ref.StoreID)
	// Output:
	// true MID1 akl-01
}
