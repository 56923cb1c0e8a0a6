package configpush_test

import (
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet/internal/testclock"
	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/configpush"
	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// fakeDir is an in-memory Directory.
type fakeDir struct {
	mu        sync.Mutex // guards the maps
	terms     map[string]configpush.TerminalRef
	merchants map[string]bool
	stores    map[[2]string]bool
	currency  map[string]string
}

func newFakeDir() *fakeDir {
	return &fakeDir{terms: map[string]configpush.TerminalRef{}, merchants: map[string]bool{}, stores: map[[2]string]bool{}, currency: map[string]string{}}
}

func (d *fakeDir) Terminals() []configpush.TerminalRef {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]configpush.TerminalRef, 0, len(d.terms))
	for _, t := range d.terms {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TerminalID < out[j].TerminalID })
	return out
}

func (d *fakeDir) Terminal(id string) (configpush.TerminalRef, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.terms[id]
	return t, ok
}

// retire removes terminal id.
func (d *fakeDir) retire(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.terms, id)
}

func (d *fakeDir) MerchantExists(m string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.merchants[m]
}

// MerchantCurrency reports USD for every merchant unless setCurrency
// changed it.
func (d *fakeDir) MerchantCurrency(m string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.merchants[m] {
		return "", false
	}
	if c, ok := d.currency[m]; ok {
		return c, true
	}
	return "USD", true
}

func (d *fakeDir) Merchants() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for m := range d.merchants {
		out = append(out, m)
	}
	return out
}

// setCurrency sets merchant m's currency.
func (d *fakeDir) setCurrency(m, cur string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.currency[m] = cur
}

// setZone sets the time zone of store m/s's terminals.
func (d *fakeDir) setZone(m, s, tz string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, t := range d.terms {
		if t.MerchantID == m && t.StoreID == s {
			t.TimeZone = tz
			d.terms[id] = t
		}
	}
}

func (d *fakeDir) StoreExists(m, s string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stores[[2]string{m, s}]
}

// add puts terminals tid into merchant m, store s, creating both.
func (d *fakeDir) add(m, s string, tids ...string) []configpush.TerminalRef {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.merchants[m] = true
	d.stores[[2]string{m, s}] = true
	var refs []configpush.TerminalRef
	for _, tid := range tids {
		ref := configpush.TerminalRef{TerminalID: tid, MerchantID: m, StoreID: s}
		d.terms[tid] = ref
		refs = append(refs, ref)
	}
	return refs
}

// tids returns n terminal IDs with the given prefix letter.
func tids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%07d", prefix, i)
	}
	return out
}

// Scopes and a plan most tests use.
var (
	global   = configpush.Scope{}
	merchant = configpush.Scope{MerchantID: "M1"}
	storeS1  = configpush.Scope{MerchantID: "M1", StoreID: "S1"}
	termT1   = configpush.Scope{TerminalID: "T0000001"}
	all      = configpush.Plan{}
)

// usd is n minor units of US dollars.
func usd(n int64) *configpush.Money { return &configpush.Money{MinorUnits: n, Currency: "USD"} }

// newClock starts a test clock at 2025-03-01 12:00 UTC.
func newClock() *testclock.Clock { return testclock.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)) }

// env is an engine over a real database in a temporary directory.
type env struct {
	t     *testing.T
	dir   string
	db    *store.DB
	audit *audit.Log
	fleet *fakeDir
	clock *testclock.Clock
	eng   *configpush.Engine
	// seq numbers the empty publishes.
	seq int
	// signals, when set before open, feeds payment gates.
	signals configpush.PaymentSignals
}

func newEnv(t *testing.T, fleet *fakeDir) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), fleet: fleet, clock: newClock()}
	e.open()
	return e
}

func (e *env) open() {
	e.t.Helper()
	var err error
	e.db = storetest.OpenDir(e.t, e.dir)
	// Registered after the store's own cleanup, so that it runs first:
	// the engine and the audit log close before their store.
	e.t.Cleanup(e.close)
	if e.audit, err = audit.Open(e.t.Context(), e.db, nil); err != nil {
		e.t.Fatalf("audit.Open: %v", err)
	}
	e.eng, err = configpush.Open(e.t.Context(), e.db, e.audit, e.fleet, configpush.Options{Now: e.clock.Now, EvalInterval: 5 * time.Millisecond, Signals: e.signals}, nil)
	if err != nil {
		e.t.Fatalf("configpush.Open: %v", err)
	}
}

func (e *env) close() {
	if e.eng == nil {
		return
	}
	if err := e.eng.Close(); err != nil {
		e.t.Errorf("Close: %v", err)
	}
	e.audit.Close()
	if err := e.db.Close(); err != nil {
		e.t.Errorf("db.Close: %v", err)
	}
	e.eng = nil
}

// restart closes and reopens everything on the same data directory.
func (e *env) restart() {
	e.t.Helper()
	e.close()
	e.open()
}

var admin = audit.Actor{Name: "admin:test"}

// publish patches scope's layer with s. An empty s gets a free-form key
// unique to the call, as a publish must change something.
func (e *env) publish(scope configpush.Scope, s *configpush.Settings, plan configpush.Plan) configpush.Rollout {
	e.t.Helper()
	if len(configpush.Diff(nil, s)) == 0 {
		e.seq++
		s = &configpush.Settings{Extra: map[string]string{"test.seq": strconv.Itoa(e.seq)}}
	}
	ro, err := e.eng.Publish(e.t.Context(), configpush.PublishRequest{Scope: scope, Settings: s, Plan: plan}, admin)
	if err != nil {
		e.t.Fatalf("Publish(%v): %v", scope, err)
	}
	return ro
}

// publishReq publishes req as the admin.
func (e *env) publishReq(req configpush.PublishRequest) configpush.Rollout {
	e.t.Helper()
	ro, err := e.eng.Publish(e.t.Context(), req, admin)
	if err != nil {
		e.t.Fatalf("Publish(%v): %v", req.Scope, err)
	}
	return ro
}

func (e *env) eff(tid string) *configpush.Effective {
	e.t.Helper()
	cfg, ok := e.eng.Effective(tid)
	if !ok {
		e.t.Fatalf("Effective(%s): unknown terminal", tid)
	}
	return cfg
}

func (e *env) rollout(id string) configpush.Rollout {
	e.t.Helper()
	ro, err := e.eng.Rollout(id)
	if err != nil {
		e.t.Fatalf("Rollout(%s): %v", id, err)
	}
	return ro
}

// ackAll acknowledges every listed terminal's current version.
func (e *env) ackAll(result configpush.AckResult, ids ...string) {
	e.t.Helper()
	for _, tid := range ids {
		if err := e.eng.Ack(e.t.Context(), tid, e.eff(tid).Version, result, ""); err != nil {
			e.t.Fatalf("Ack(%s): %v", tid, err)
		}
	}
}

// waitState polls until rollout id is in state want; state changes driven
// by the clock happen on the engine's background loop.
func (e *env) waitState(id string, want configpush.State) configpush.Rollout {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ro := e.rollout(id)
		if ro.State == want {
			return ro
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("rollout %s state = %s, want %s", id, ro.State, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// watch opens a watch of tid from known, closed when the test ends.
func (e *env) watch(tid string, known uint64) *configpush.Watcher {
	e.t.Helper()
	w, err := e.eng.Watch(tid, known)
	if err != nil {
		e.t.Fatalf("Watch(%s, %d): %v", tid, known, err)
	}
	e.t.Cleanup(w.Close)
	return w
}

// next returns the next config w delivers.
func (e *env) next(w *configpush.Watcher) *configpush.Effective {
	e.t.Helper()
	cfg, _, err := w.Next(e.t.Context())
	if err != nil {
		e.t.Fatalf("Watcher.Next: %v", err)
	}
	return cfg
}

func ptr[T any](v T) *T { return &v }
