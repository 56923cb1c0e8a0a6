package fleet_test

import (
	"crypto/rand"
	"encoding/base64"
	"testing"
	"time"

	"github.com/posfleet/posfleet/internal/testclock"
	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/fleet"
	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

func testSecret(prefix string) string {
	var b [32]byte
	rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// env is an open fleet over a database in dir.
type env struct {
	t     testing.TB
	dir   string
	db    *store.DB
	audit *audit.Log
	f     *fleet.Fleet
	clock *testclock.Clock
	opts  fleet.Options
}

var admin = audit.Actor{Name: "admin:test", Peer: "127.0.0.1:5000"}

func newEnv(t *testing.T) *env {
	t.Helper()
	opts := fleet.DefaultOptions()
	return openEnv(t, t.TempDir(), testclock.New(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)), opts)
}

func openEnv(t testing.TB, dir string, c *testclock.Clock, opts fleet.Options) *env {
	t.Helper()
	return openEnvStore(t, store.DefaultOptions(dir), c, opts)
}

// openEnvStore is openEnv with the store's options (a commit fault hook).
func openEnvStore(t testing.TB, sopts store.Options, c *testclock.Clock, opts fleet.Options) *env {
	t.Helper()
	dir := sopts.Dir
	db := storetest.OpenWith(t, sopts)
	log, err := audit.Open(t.Context(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts.NewSecret = testSecret
	opts.Now = c.Now
	f, err := fleet.Open(t.Context(), db, log, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, db: db, audit: log, f: f, clock: c, opts: opts}
	t.Cleanup(e.close)
	return e
}

func (e *env) close() {
	if e.f == nil {
		return
	}
	if err := e.f.Close(); err != nil {
		e.t.Errorf("fleet Close: %v", err)
	}
	e.audit.Close()
	if err := e.db.Close(); err != nil {
		e.t.Errorf("db Close: %v", err)
	}
	e.f = nil
}

// reopen closes and opens the fleet over the same data.
func (e *env) reopen() *env {
	e.t.Helper()
	e.close()
	return openEnv(e.t, e.dir, e.clock, e.opts)
}

func (e *env) merchant(mid string, stores ...string) {
	e.t.Helper()
	ctx := e.t.Context()
	if _, err := e.f.CreateMerchant(ctx, fleet.Merchant{ID: mid, LegalName: mid + " Ltd", DisplayName: mid, MCC: "5411", Currency: "NZD"}, admin); err != nil {
		e.t.Fatal(err)
	}
	for _, s := range stores {
		if _, err := e.f.CreateStore(ctx, fleet.Store{MerchantID: mid, ID: s, Name: "Store " + s}, admin); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) provision(serial, mid, sid string) fleet.Provisioned {
	e.t.Helper()
	p, err := e.f.Provision(e.t.Context(), fleet.ProvisionRequest{Serial: serial, MerchantID: mid, StoreID: sid}, admin)
	if err != nil {
		e.t.Fatalf("Provision(%s): %v", serial, err)
	}
	return p
}

func (e *env) register(serial, code string) (fleet.Registration, error) {
	return e.f.Register(e.t.Context(), fleet.RegisterRequest{Serial: serial, Code: code, Peer: "10.0.0.1:4000", Device: fleet.Device{Model: "A920"}})
}

func (e *env) registered(serial, mid, sid string) fleet.Registration {
	e.t.Helper()
	p := e.provision(serial, mid, sid)
	r, err := e.register(serial, p.EnrollmentCode)
	if err != nil {
		e.t.Fatalf("Register(%s): %v", serial, err)
	}
	return r
}

// events returns the audit events of a type, newest first.
func (e *env) events(typ audit.Type) []audit.Event {
	e.t.Helper()
	if err := e.audit.Flush(e.t.Context()); err != nil {
		e.t.Fatal(err)
	}
	evs, _, err := e.audit.List(e.t.Context(), audit.Filter{Type: typ}, 1000, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}
