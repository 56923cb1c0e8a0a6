package payment_test

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet/internal/testclock"
	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/payment"
	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

var errUnknownTerminal = errors.New("test: unknown terminal")

// directory is a Directory backed by a map; tests change policies at will.
type directory struct {
	mu   sync.Mutex // guards pols
	pols map[string]payment.Policy
	// def is the template for terminals not set explicitly, when auto is on.
	def  payment.Policy
	auto bool
}

func (d *directory) Policy(id string) (payment.Policy, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.pols[id]; ok {
		return p, nil
	}
	if d.auto {
		p := d.def
		p.TerminalID = id
		return p, nil
	}
	return payment.Policy{}, errUnknownTerminal
}

func (d *directory) set(p payment.Policy) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pols[p.TerminalID] = p
}

func (d *directory) update(id string, fn func(*payment.Policy)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.pols[id]
	if !ok {
		p = d.def
		p.TerminalID = id
	}
	fn(&p)
	d.pols[id] = p
}

// startTime is the test clock's start: a Saturday late morning in UTC.
var startTime = time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)

const (
	term1 = "T0000001"
	merch = "M1"
	cur   = "NZD"
)

// basePolicy is a terminal of merchant M1 (NZD, MCC 5411) without limits.
func basePolicy(id string) payment.Policy {
	return payment.Policy{
		TerminalID:       id,
		MerchantID:       merch,
		StoreID:          "S1",
		MerchantCurrency: cur,
		MerchantMCC:      "5411",
		Location:         time.UTC,
	}
}

// env is an engine on a real, synced store in a temporary directory.
type env struct {
	t     testing.TB
	path  string
	opts  payment.Options
	dir   *directory
	clock *testclock.Clock
	db    *store.DB
	audit *audit.Log
	eng   *payment.Engine
}

func newEnv(t testing.TB, tweak ...func(*payment.Options)) *env {
	t.Helper()
	return newEnvAt(t, t.TempDir(), tweak...)
}

// newEnvAt is newEnv on the database in path.
func newEnvAt(t testing.TB, path string, tweak ...func(*payment.Options)) *env {
	t.Helper()
	v := &env{
		t:     t,
		path:  path,
		opts:  payment.DefaultOptions(),
		dir:   &directory{pols: map[string]payment.Policy{}, def: basePolicy(""), auto: true},
		clock: testclock.New(startTime),
	}
	v.opts.Now = v.clock.Now
	for _, f := range tweak {
		f(&v.opts)
	}
	v.open()
	t.Cleanup(v.close)
	return v
}

func (v *env) open() {
	v.t.Helper()
	if err := v.tryOpen(); err != nil {
		v.t.Fatal(err)
	}
}

// tryOpen opens the store, the audit log and the engine, or returns why
// it could not, with nothing left open.
func (v *env) tryOpen() error {
	sopts := store.DefaultOptions(v.path)
	sopts.GCInterval = 0
	db, err := storetest.TryOpenWith(v.t, sopts)
	if err != nil {
		return fmt.Errorf("store.Open: %w", err)
	}
	al, err := audit.Open(v.t.Context(), db, slog.New(slog.DiscardHandler))
	if err != nil {
		db.Close()
		return fmt.Errorf("audit.Open: %w", err)
	}
	eng, err := payment.Open(v.t.Context(), db, al, v.dir, v.opts, nil)
	if err != nil {
		al.Close()
		db.Close()
		return fmt.Errorf("payment.Open: %w", err)
	}
	v.db, v.audit, v.eng = db, al, eng
	return nil
}

func (v *env) close() {
	if v.eng == nil {
		return
	}
	v.eng.Close()
	v.audit.Close()
	v.db.Close()
	v.eng = nil
}

// reopen closes everything and opens it again on the same directory.
func (v *env) reopen() {
	v.t.Helper()
	if err := v.eng.Close(); err != nil {
		v.t.Fatalf("Close: %v", err)
	}
	v.audit.Close()
	if err := v.db.Close(); err != nil {
		v.t.Fatalf("db.Close: %v", err)
	}
	v.eng = nil
	v.open()
}

func sale(terminal, requestID string, amount int64) payment.AuthorizeRequest {
	return payment.AuthorizeRequest{
		TerminalID: terminal,
		RequestID:  requestID,
		MerchantID: merch,
		Amount:     payment.Money{MinorUnits: amount, Currency: cur},
		Card:       payment.Card{Token: "tok_card_" + requestID, MaskedPAN: "411111******1111", EntryMode: payment.EntryModeChip},
		LocalTime:  startTime,
		Capture:    true,
	}
}

func (v *env) authorize(req payment.AuthorizeRequest) payment.AuthorizeResult {
	v.t.Helper()
	res, err := v.eng.Authorize(v.t.Context(), req)
	if err != nil {
		v.t.Fatalf("Authorize(%s): %v", req.RequestID, err)
	}
	return res
}

func (v *env) reverse(terminal, requestID, original string) payment.ReverseResult {
	v.t.Helper()
	res, err := v.eng.Reverse(v.t.Context(), payment.ReverseRequest{
		TerminalID: terminal, RequestID: requestID, OriginalRequestID: original,
		Reason: payment.ReversalReasonCustomerCancel,
	})
	if err != nil {
		v.t.Fatalf("Reverse(%s): %v", requestID, err)
	}
	return res
}

func (v *env) refund(terminal, requestID, authID string, amount int64) payment.RefundResult {
	v.t.Helper()
	res, err := v.eng.Refund(v.t.Context(), payment.RefundRequest{
		TerminalID: terminal, RequestID: requestID, AuthorizationID: authID,
		Amount: payment.Money{MinorUnits: amount, Currency: cur},
	})
	if err != nil {
		v.t.Fatalf("Refund(%s): %v", requestID, err)
	}
	return res
}

// openBatch returns the terminal's open batch as stored.
func (v *env) openBatch(terminal string) payment.BatchSummary {
	v.t.Helper()
	b, ok, err := v.eng.Batch(v.t.Context(), terminal, 0)
	if err != nil || !ok {
		v.t.Fatalf("Batch(%s, open) = %v, %v", terminal, ok, err)
	}
	return b
}

// transactions lists every transaction matching f.
func (v *env) transactions(f payment.TxFilter) []payment.Transaction {
	v.t.Helper()
	var all []payment.Transaction
	token := ""
	for {
		page, next, err := v.eng.ListTransactions(v.t.Context(), f, 1000, token)
		if err != nil {
			v.t.Fatalf("ListTransactions: %v", err)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		token = next
	}
}
