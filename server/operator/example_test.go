package operator_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/auth"
	"github.com/posfleet/posfleet/server/operator"
	"github.com/posfleet/posfleet/server/store"
)

// The bootstrap ADMIN token, a token created for a role, and a call
// authenticated by its secret.
func Example() {
	dir, err := os.MkdirTemp("", "posfleet-operator-example")
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
	ctx := context.Background()

	toks, err := operator.Open(ctx, db, operator.Options{NewSecret: server.NewSecret}, logger)
	if err != nil {
		panic(err)
	}
	if err := toks.EnsureBootstrap(ctx, server.NewSecret("pfa_")); err != nil {
		panic(err)
	}
	secret, _, err := toks.Create(ctx, "night-shift", auth.RoleOperator, 0, audit.Event{Actor: "admin:ops"})
	if err != nil {
		panic(err)
	}
	tok, err := toks.Authenticate(secret)
	if err != nil {
		panic(err)
	}
	fmt.Println(tok.Name, tok.Role)
	_, err = toks.Authenticate("pfa_not-a-token")
	fmt.Println(err != nil)
	// Output:
	// night-shift OPERATOR
	// true
}
