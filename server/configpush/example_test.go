package configpush_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/configpush"
	"github.com/posfleet/posfleet/server/store"
)

// oneTerminal is a fleet of one terminal; the server's directory is the
// fleet package.
type oneTerminal struct{ ref configpush.TerminalRef }

func (d oneTerminal) Terminals() []configpush.TerminalRef { return []configpush.TerminalRef{d.ref} }
func (d oneTerminal) Terminal(id string) (configpush.TerminalRef, bool) {
	return d.ref, id == d.ref.TerminalID
}
func (d oneTerminal) MerchantExists(id string) bool { return id == d.ref.MerchantID }
func (d oneTerminal) MerchantCurrency(id string) (string, bool) {
	return "NZD", id == d.ref.MerchantID
}
func (d oneTerminal) Merchants() []string { return []string{d.ref.MerchantID} }
func (d oneTerminal) StoreExists(merchantID, storeID string) bool {
	return merchantID == d.ref.MerchantID && storeID == d.ref.StoreID
}

// A merchant-wide setting published in one stage, read from memory as the
// payment engine does, and pushed to a watching terminal.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "posfleet-configpush-example")
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

	fleet := oneTerminal{configpush.TerminalRef{TerminalID: "T0000001", MerchantID: "M1", StoreID: "S1"}}
	eng, err := configpush.Open(ctx, db, auditLog, fleet, configpush.Options{}, logger)
	if err != nil {
		panic(err)
	}
	defer eng.Close()

	w, err := eng.Watch("T0000001", 0) // the version the terminal has
	if err != nil {
		panic(err)
	}
	defer w.Close()

	thirty := 30 * time.Second
	ro, err := eng.Publish(ctx, configpush.PublishRequest{
		Scope:    configpush.Scope{MerchantID: "M1"},
		Settings: &configpush.Settings{HeartbeatInterval: &thirty},
		Plan:     configpush.Plan{StagePercents: []uint32{100}},
	}, audit.Actor{Name: "admin:ops"})
	if err != nil {
		panic(err)
	}

	cfg, ok := eng.Effective("T0000001") // from memory, for every payment
	fmt.Println(ok, cfg.Version == ro.Version, *cfg.Settings.HeartbeatInterval)

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pushed, _, err := w.Next(wctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(pushed.Version == ro.Version)
	// Output:
	// true true 30s
	// true
}
