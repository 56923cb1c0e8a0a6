package fleet_test

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
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
	db := storetest.OpenDir(t, dir)
	log, err := audit.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts.NewSecret = testSecret
	opts.Now = c.Now
	f, err := fleet.Open(t.Context(), db, log, nil, opts)
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

func TestCanonicalPayload(t *testing.T) {
	id := &fleet.Identity{
		MerchantID: "MID1", LegalName: "Back\\slash\nLtd", DisplayName: "Kiwi", MCC: "5411",
		StoreID: "akl-01", StoreName: "Queen St", TerminalID: "AB12CD34", IdentityVersion: 7,
		IssueTime: time.Date(2025, 3, 1, 9, 30, 15, 999_000_000, time.FixedZone("NZDT", 13*3600)),
		KeyID:     "0123456789abcdef",
	}
	want := "posfleet-identity-v1\n" +
		"merchant_id=MID1\n" +
		"legal_name=Back\\\\slash\\nLtd\n" +
		"display_name=Kiwi\n" +
		"mcc=5411\n" +
		"store_id=akl-01\n" +
		"store_name=Queen St\n" +
		"terminal_id=AB12CD34\n" +
		"identity_version=7\n" +
		"issue_time=2025-02-28T20:30:15Z\n" +
		"key_id=0123456789abcdef\n"
	if got := string(fleet.CanonicalPayload(id)); got != want {
		t.Errorf("CanonicalPayload:\ngot  %q\nwant %q", got, want)
	}
}

func TestIdentityIsSignedAndVerifies(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	reg := e.registered("SN1", "MID1", "s1")
	id := reg.Identity
	if err := fleet.VerifyIdentity(&id); err != nil {
		t.Fatalf("VerifyIdentity: %v", err)
	}
	keys := e.f.PublicKeys()
	if len(keys) != 1 || !keys[0].Active || keys[0].KeyID != id.KeyID || fleet.KeyID(keys[0].Key) != id.KeyID || len(id.KeyID) != 16 {
		t.Fatalf("public keys %+v, identity key %q: want one active key with the identity's 16-hex key ID", keys, id.KeyID)
	}
	tampered := id
	tampered.MerchantID = "MID2"
	if err := fleet.VerifyIdentity(&tampered); err == nil {
		t.Error("VerifyIdentity accepted an identity whose fields differ from the payload")
	}
	tampered = id
	tampered.SignedPayload = []byte(strings.Replace(string(id.SignedPayload), "MID1", "MID2", 1))
	tampered.MerchantID = "MID2"
	if err := fleet.VerifyIdentity(&tampered); err == nil {
		t.Error("VerifyIdentity accepted a payload that was changed after signing")
	}

	// Rotation: new identities name the new key; the old key stays published.
	newKey, err := e.f.RotateSigningKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	id2, err := e.f.Identity(reg.Terminal.ID)
	if err != nil {
		t.Fatal(err)
	}
	if id2.KeyID != newKey || id2.KeyID == id.KeyID {
		t.Errorf("after rotation identity key = %s, want new key %s", id2.KeyID, newKey)
	}
	if err := fleet.VerifyIdentity(&id2); err != nil {
		t.Errorf("identity after rotation: %v", err)
	}
	if n := len(e.f.PublicKeys()); n != 2 {
		t.Errorf("published keys after rotation = %d, want 2", n)
	}
}

func TestRegisterRefusals(t *testing.T) {
	cases := []struct {
		name      string
		setup     func(e *env, p fleet.Provisioned) (serial, code string)
		want      error
		wantAudit audit.Type
	}{
		{"wrong code", func(e *env, p fleet.Provisioned) (string, string) { return "SN1", "AAAA-BBBB-CCCC" },
			fleet.ErrEnrollmentInvalid, audit.RegistrationRefused},
		{"code from another serial", func(e *env, p fleet.Provisioned) (string, string) { return "SN-OTHER", p.EnrollmentCode },
			fleet.ErrEnrollmentInvalid, audit.IdentityCollision},
		{"code used twice", func(e *env, p fleet.Provisioned) (string, string) {
			if _, err := e.register("SN1", p.EnrollmentCode); err != nil {
				e.t.Fatal(err)
			}
			return "SN1", p.EnrollmentCode
		}, fleet.ErrEnrollmentUsed, audit.IdentityCollision},
		{"expired code", func(e *env, p fleet.Provisioned) (string, string) {
			e.clock.Advance(e.opts.EnrollmentTTL + time.Second)
			return "SN1", p.EnrollmentCode
		}, fleet.ErrEnrollmentExpired, audit.RegistrationRefused},
		{"retired terminal", func(e *env, p fleet.Provisioned) (string, string) {
			if _, err := e.f.Retire(e.t.Context(), p.Terminal.ID, "stolen", admin); err != nil {
				e.t.Fatal(err)
			}
			return "SN1", p.EnrollmentCode
		}, fleet.ErrTerminalRetired, audit.RegistrationRefused},
		{"suspended terminal", func(e *env, p fleet.Provisioned) (string, string) {
			if _, err := e.f.Suspend(e.t.Context(), p.Terminal.ID, "audit", admin); err != nil {
				e.t.Fatal(err)
			}
			return "SN1", p.EnrollmentCode
		}, fleet.ErrTerminalSuspended, audit.RegistrationRefused},
		{"replaced code", func(e *env, p fleet.Provisioned) (string, string) {
			if _, _, err := e.f.ReissueEnrollment(e.t.Context(), p.Terminal.ID, 0, admin); err != nil {
				e.t.Fatal(err)
			}
			return "SN1", p.EnrollmentCode
		}, fleet.ErrEnrollmentInvalid, audit.RegistrationRefused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.merchant("MID1", "s1")
			p := e.provision("SN1", "MID1", "s1")
			serial, code := tc.setup(e, p)
			_, err := e.register(serial, code)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Register: got %v, want %v", err, tc.want)
			}
			evs := e.events(tc.wantAudit)
			if len(evs) == 0 {
				t.Fatalf("no %v audit event for the refusal", tc.wantAudit)
			}
			for _, ev := range e.events(audit.TypeUnspecified) {
				if strings.Contains(fmt.Sprint(ev), code) || strings.Contains(fmt.Sprint(ev), strings.ReplaceAll(code, "-", "")) {
					t.Errorf("audit event %+v contains the enrollment code", ev)
				}
			}
		})
	}
}

func TestEnrollmentCodeFormsAccepted(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	p := e.provision("SN1", "MID1", "s1")
	if len(p.EnrollmentCode) != 14 || strings.Count(p.EnrollmentCode, "-") != 2 {
		t.Fatalf("code %q, want XXXX-XXXX-XXXX", p.EnrollmentCode)
	}
	typed := strings.ToLower(strings.ReplaceAll(p.EnrollmentCode, "-", " "))
	if _, err := e.register("SN1", typed); err != nil {
		t.Fatalf("Register with %q (lower case, spaces) for %q: %v", typed, p.EnrollmentCode, err)
	}
}

func TestRegistrationRateLimits(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	p := e.provision("SN1", "MID1", "s1")
	// Per serial: every attempt counts, the right code too once spent.
	for i := range e.opts.SerialAttempts {
		if _, err := e.register("SN1", "WRONG-CODE-0000"); !errors.Is(err, fleet.ErrEnrollmentInvalid) {
			t.Fatalf("attempt %d: %v, want ErrEnrollmentInvalid", i, err)
		}
	}
	if _, err := e.register("SN1", p.EnrollmentCode); !errors.Is(err, fleet.ErrRateLimited) {
		t.Fatalf("attempt past the serial budget: %v, want ErrRateLimited", err)
	}
	e.clock.Advance(time.Minute) // refills SerialAttemptsPerMinute tokens
	if _, err := e.register("SN1", p.EnrollmentCode); err != nil {
		t.Fatalf("after refill: %v", err)
	}

	// Per peer: refusals from one address, whatever the serial.
	e2 := newEnv(t)
	e2.merchant("MID1", "s1")
	for i := range e2.opts.PeerFailures {
		_, err := e2.register(fmt.Sprintf("SCAN-%d", i), "AAAA-BBBB-CCCC")
		if !errors.Is(err, fleet.ErrEnrollmentInvalid) {
			t.Fatalf("scan %d: %v", i, err)
		}
	}
	if _, err := e2.register("SCAN-X", "AAAA-BBBB-CCCC"); !errors.Is(err, fleet.ErrRateLimited) {
		t.Fatalf("bad code from a peer past its failure budget: %v, want ErrRateLimited", err)
	}
	// A good code from the same address is not locked out by the scan: the
	// flood used to refuse every registration from the address.
	p2 := e2.provision("SN2", "MID1", "s1")
	if _, err := e2.register("SN2", p2.EnrollmentCode); err != nil {
		t.Fatalf("good code from a peer past its failure budget: %v, want success", err)
	}
	// Another peer is not affected.
	p3 := e2.provision("SN3", "MID1", "s1")
	_, err := e2.f.Register(t.Context(), fleet.RegisterRequest{Serial: "SN3", Code: p3.EnrollmentCode, Peer: "10.9.9.9:1"})
	if err != nil {
		t.Fatalf("register from another peer: %v", err)
	}
	// The audit trail coalesced the scan: far fewer events than attempts.
	if n := len(e2.events(audit.RegistrationRefused)); n == 0 || n > 3 {
		t.Errorf("refusal audit events = %d for %d refusals, want coalesced (1-3)", n, e2.opts.PeerFailures+1)
	}
}

// A known code tried from many serials (a leaked code) is limited per code,
// since it no longer spends the peer's budget check.
func TestKnownCodeIsLimitedAcrossSerials(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	p := e.provision("SN1", "MID1", "s1")
	var err error
	tries := 0
	for ; tries < 50; tries++ {
		if _, err = e.register(fmt.Sprintf("OTHER-%d", tries), p.EnrollmentCode); errors.Is(err, fleet.ErrRateLimited) {
			break
		}
	}
	if !errors.Is(err, fleet.ErrRateLimited) || tries > e.opts.SerialAttempts {
		t.Fatalf("after %d tries of a known code from other serials: %v, want ErrRateLimited within %d", tries, err, e.opts.SerialAttempts)
	}
}

// Refused registrations that name different terminals are audited apart:
// grouped per address and reason only, a second identity collision within
// the minute, on another terminal, left no trace of that terminal.
func TestRefusedRegistrationsOfDifferentTerminalsAreAuditedApart(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	want := map[string]bool{}
	for _, serial := range []string{"SN1", "SN2"} {
		p := e.provision(serial, "MID1", "s1")
		want[p.Terminal.ID] = true
		if _, err := e.register("CLONE-"+serial, p.EnrollmentCode); !errors.Is(err, fleet.ErrEnrollmentInvalid) {
			t.Fatalf("%s's code from another serial: %v", serial, err)
		}
	}
	for _, ev := range e.events(audit.IdentityCollision) {
		delete(want, ev.TerminalID)
	}
	if len(want) > 0 {
		t.Errorf("no IDENTITY_COLLISION event for terminals %v", want)
	}
}

func TestSuccessfulRegistrationsAreNotRateLimited(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	n := 3 * e.opts.PeerFailures // a registration storm from one address
	for i := range n {
		e.registered(fmt.Sprintf("SN%03d", i), "MID1", "s1")
	}
}

func TestCredentialLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1")
	reg := e.registered("SN1", "MID1", "s1")
	id := reg.Terminal.ID
	if !strings.HasPrefix(reg.Credential, "pft_") {
		t.Errorf("credential %q lacks the pft_ prefix", reg.Credential)
	}
	ref, err := e.f.Authenticate(reg.Credential)
	if err != nil || ref.TerminalID != id || ref.MerchantID != "MID1" || ref.StoreID != "s1" {
		t.Fatalf("Authenticate = %+v, %v; want %s at MID1/s1", ref, err, id)
	}
	if _, err := e.f.Authenticate(reg.Credential + "x"); !errors.Is(err, fleet.ErrBadCredential) {
		t.Errorf("wrong credential: %v, want ErrBadCredential", err)
	}

	rotated, err := e.f.RotateCredential(ctx, id, admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.Authenticate(reg.Credential); !errors.Is(err, fleet.ErrBadCredential) {
		t.Errorf("old credential after rotation: %v, want ErrBadCredential", err)
	}
	if _, err := e.f.Authenticate(rotated); err != nil {
		t.Errorf("rotated credential: %v", err)
	}

	// A reissued code re-registers the terminal and replaces the credential.
	code, _, err := e.f.ReissueEnrollment(ctx, id, 0, admin)
	if err != nil {
		t.Fatal(err)
	}
	reg2, err := e.register("SN1", code)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.Authenticate(rotated); !errors.Is(err, fleet.ErrBadCredential) {
		t.Errorf("credential replaced by re-registration still works: %v", err)
	}

	if _, err := e.f.Suspend(ctx, id, "check", admin); err != nil {
		t.Fatal(err)
	}
	if ref, err := e.f.Authenticate(reg2.Credential); !errors.Is(err, fleet.ErrTerminalSuspended) || ref.TerminalID != id {
		t.Errorf("suspended: %+v, %v; want the terminal and ErrTerminalSuspended", ref, err)
	}
	if _, err := e.f.RotateCredential(ctx, id, admin); !errors.Is(err, fleet.ErrTerminalSuspended) {
		t.Errorf("rotate while suspended: %v, want ErrTerminalSuspended", err)
	}
	v, err := e.f.Reactivate(ctx, id, "ok", admin)
	if err != nil || v.State != fleet.StateActive {
		t.Fatalf("Reactivate = %v, %v; want ACTIVE", v.State, err)
	}
	if _, err := e.f.Retire(ctx, id, "broken", admin); err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.Authenticate(reg2.Credential); !errors.Is(err, fleet.ErrTerminalRetired) {
		t.Errorf("retired: %v, want ErrTerminalRetired", err)
	}
	if _, err := e.f.Reactivate(ctx, id, "", admin); !errors.Is(err, fleet.ErrTerminalRetired) {
		t.Errorf("reactivate retired: %v, want ErrTerminalRetired", err)
	}
}

func TestSerialCollisionAndReuseAfterRetire(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1")
	p := e.provision("SN1", "MID1", "s1")
	_, err := e.f.Provision(ctx, fleet.ProvisionRequest{Serial: "SN1", MerchantID: "MID1", StoreID: "s1"}, admin)
	if !errors.Is(err, fleet.ErrSerialInUse) {
		t.Fatalf("second provision of SN1: %v, want ErrSerialInUse", err)
	}
	evs := e.events(audit.IdentityCollision)
	if len(evs) != 1 || evs[0].TerminalID != p.Terminal.ID || evs[0].Attributes["serial_number"] != "SN1" {
		t.Fatalf("collision events = %+v, want one naming %s and SN1", evs, p.Terminal.ID)
	}
	if _, err := e.f.Retire(ctx, p.Terminal.ID, "replaced", admin); err != nil {
		t.Fatal(err)
	}
	p2 := e.provision("SN1", "MID1", "s1")
	if p2.Terminal.ID == p.Terminal.ID {
		t.Errorf("reprovisioned serial got the retired terminal's ID %s", p.Terminal.ID)
	}
	for _, tc := range []struct {
		req  fleet.ProvisionRequest
		want error
	}{
		{fleet.ProvisionRequest{Serial: "X", MerchantID: "NOPE", StoreID: "s1"}, fleet.ErrMerchantNotFound},
		{fleet.ProvisionRequest{Serial: "X", MerchantID: "MID1", StoreID: "nope"}, fleet.ErrStoreNotFound},
	} {
		if _, err := e.f.Provision(ctx, tc.req, admin); !errors.Is(err, tc.want) {
			t.Errorf("Provision(%+v): %v, want %v", tc.req, err, tc.want)
		}
	}
}

func TestConcurrentProvisionKeepsSerialsUnique(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 8 {
		wg.Go(func() {
			_, err := e.f.Provision(t.Context(), fleet.ProvisionRequest{Serial: "SAME", MerchantID: "MID1", StoreID: "s1"}, admin)
			if err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			} else if !errors.Is(err, fleet.ErrSerialInUse) {
				t.Errorf("Provision: %v", err)
			}
		})
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d concurrent provisions of one serial succeeded, want 1", ok)
	}
}

func TestIdentityVersionOnUpdateAndRebind(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1", "s2")
	e.merchant("MID2", "x1")
	reg := e.registered("SN1", "MID1", "s1")
	id := reg.Terminal.ID
	version := func() uint64 {
		t.Helper()
		ident, err := e.f.Identity(id)
		if err != nil {
			t.Fatal(err)
		}
		if err := fleet.VerifyIdentity(&ident); err != nil {
			t.Fatal(err)
		}
		return ident.IdentityVersion
	}
	if v := version(); v != 1 {
		t.Fatalf("initial identity version = %d, want 1", v)
	}
	for range 3 { // MID1 at version 4
		name := "Renamed"
		if _, err := e.f.UpdateMerchant(ctx, "MID1", fleet.MerchantUpdate{DisplayName: &name}, admin); err != nil {
			t.Fatal(err)
		}
	}
	if v := version(); v != 4 {
		t.Fatalf("after three merchant updates identity version = %d, want 4", v)
	}
	ident, _ := e.f.Identity(id)
	if ident.DisplayName != "Renamed" {
		t.Errorf("identity display name = %q, want the updated Renamed", ident.DisplayName)
	}
	// MID2 is at version 1: a rebind must still move the terminal forward.
	tv, err := e.f.Rebind(ctx, id, "MID2", "x1", "sold to MID2", admin)
	if err != nil {
		t.Fatal(err)
	}
	if tv.IdentityVersion != 5 || version() != 5 {
		t.Fatalf("after rebind identity version = %d/%d, want 5", tv.IdentityVersion, version())
	}
	if ref, err := e.f.Authenticate(reg.Credential); err != nil || ref.MerchantID != "MID2" {
		t.Errorf("binding after rebind = %+v, %v; want MID2", ref, err)
	}
	if _, err := e.f.Rebind(ctx, id, "MID2", "x1", "again", admin); !errors.Is(err, fleet.ErrSameBinding) {
		t.Errorf("rebind to the same store: %v, want ErrSameBinding", err)
	}
	if _, err := e.f.Rebind(ctx, id, "MID1", "nope", "x", admin); !errors.Is(err, fleet.ErrStoreNotFound) {
		t.Errorf("rebind to a missing store: %v, want ErrStoreNotFound", err)
	}
	evs := e.events(audit.TerminalRebound)
	if len(evs) != 2 { // one on each merchant's trail
		t.Fatalf("rebind audit events = %d, want 2", len(evs))
	}
	if a := evs[0].Attributes; a["from_merchant_id"] != "MID1" || a["to_merchant_id"] != "MID2" || a["reason"] != "sold to MID2" {
		t.Errorf("rebind attributes = %v", a)
	}
	// A merchant update of the new merchant bumps it again.
	if _, err := e.f.UpdateMerchant(ctx, "MID2", fleet.MerchantUpdate{}, admin); err != nil {
		t.Fatal(err)
	}
	if v := version(); v != 6 {
		t.Errorf("after MID2 update identity version = %d, want 6", v)
	}
}

func TestVerifyMerchantMismatchIsAudited(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	reg := e.registered("SN1", "MID1", "s1")
	who := audit.Actor{Name: "terminal:" + reg.Terminal.ID}
	for _, tc := range []struct {
		claim   string
		matches bool
	}{{"", false}, {"MID1", true}, {"MID9", false}} {
		_, ok, err := e.f.VerifyMerchant(t.Context(), reg.Terminal.ID, tc.claim, who)
		if err != nil || ok != tc.matches {
			t.Errorf("VerifyMerchant(%q) = %v, %v; want %v", tc.claim, ok, err, tc.matches)
		}
	}
	evs := e.events(audit.MerchantMismatch)
	if len(evs) != 1 || evs[0].Attributes["claimed_merchant_id"] != "MID9" || evs[0].TerminalID != reg.Terminal.ID {
		t.Fatalf("mismatch events = %+v, want one claiming MID9", evs)
	}
	if n := e.audit.MismatchesByTerminal()[reg.Terminal.ID]; n != 1 {
		t.Errorf("mismatch count = %d, want 1", n)
	}
}

func TestConnectivityFromHeartbeats(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	reg := e.registered("SN1", "MID1", "s1")
	id := reg.Terminal.ID
	conn := func() fleet.Connectivity {
		v, err := e.f.Terminal(id)
		if err != nil {
			t.Fatal(err)
		}
		return v.Connectivity
	}
	iv := e.opts.HeartbeatInterval
	e.clock.Advance(11 * iv) // the registration's contact is long past
	if got := conn(); got != fleet.Offline {
		t.Fatalf("11 intervals after registering: %v, want OFFLINE", got)
	}
	if _, err := e.f.Heartbeat(id, fleet.Status{FirmwareVersion: "fw"}, nil); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		advance time.Duration
		want    fleet.Connectivity
	}{
		{2 * iv, fleet.Online},
		{time.Second, fleet.Stale},
		{8*iv - time.Second, fleet.Stale},
		{time.Second, fleet.Offline},
	} {
		e.clock.Advance(step.advance)
		if got := conn(); got != step.want {
			t.Errorf("%v after the heartbeat: %v, want %v", e.clock.Now().Sub(reg.Terminal.Created), got, step.want)
		}
	}
}

// A terminal that registered and paid, but never sent a heartbeat, was in
// contact: any authenticated call counts, and the contact survives a
// restart (it is flushed with the heartbeat batch).
func TestConnectivityFromAnyContact(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	p := e.provision("SN1", "MID1", "s1")
	view := func(e *env) fleet.Terminal {
		v, err := e.f.Terminal(p.Terminal.ID)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := view(e); v.Connectivity != fleet.NeverSeen || !v.LastSeen.IsZero() {
		t.Fatalf("provisioned: %v, last seen %v; want NEVER_SEEN and none", v.Connectivity, v.LastSeen)
	}
	reg, err := e.register("SN1", p.EnrollmentCode)
	if err != nil {
		t.Fatal(err)
	}
	if v := view(e); v.Connectivity != fleet.Online || !v.LastSeen.Equal(e.clock.Now().UTC()) || !v.LastHeartbeat.IsZero() {
		t.Fatalf("registered: %v, last seen %v, last heartbeat %v; want ONLINE, now, none", v.Connectivity, v.LastSeen, v.LastHeartbeat)
	}
	iv := e.opts.HeartbeatInterval
	e.clock.Advance(11 * iv)
	if v := view(e); v.Connectivity != fleet.Offline {
		t.Fatalf("11 intervals later: %v, want OFFLINE", v.Connectivity)
	}
	// A payment (or any other call) authenticates the credential.
	if _, err := e.f.Authenticate(reg.Credential); err != nil {
		t.Fatal(err)
	}
	paid := e.clock.Now().UTC()
	if v := view(e); v.Connectivity != fleet.Online || !v.LastSeen.Equal(paid) {
		t.Fatalf("after an authenticated call: %v, last seen %v; want ONLINE, %v", v.Connectivity, v.LastSeen, paid)
	}
	// A wrong credential is no contact.
	e.clock.Advance(time.Minute)
	if _, err := e.f.Authenticate(reg.Credential + "x"); err == nil {
		t.Fatal("a wrong credential authenticated")
	}
	if v := view(e); !v.LastSeen.Equal(paid) {
		t.Fatalf("after a wrong credential: last seen %v, want %v", v.LastSeen, paid)
	}
	if err := e.f.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	e2 := e.reopen()
	if v := view(e2); !v.LastSeen.Equal(paid) || !v.LastHeartbeat.IsZero() {
		t.Fatalf("after restart: last seen %v, last heartbeat %v; want %v and none", v.LastSeen, v.LastHeartbeat, paid)
	}
}

type fixedConfig struct {
	version  uint64
	interval time.Duration
}

func (c fixedConfig) DesiredConfigVersion(string) uint64     { return c.version }
func (c fixedConfig) HeartbeatInterval(string) time.Duration { return c.interval }

func TestHeartbeatUsesConfigSourceWithJitter(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	reg := e.registered("SN1", "MID1", "s1")
	res, err := e.f.Heartbeat(reg.Terminal.ID, fleet.Status{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ConfigVersion != 0 {
		t.Errorf("config version without a source = %d, want 0", res.ConfigVersion)
	}
	e.f.SetConfigSource(fixedConfig{version: 42, interval: 100 * time.Second})
	seen := map[time.Duration]bool{}
	for range 50 {
		res, err := e.f.Heartbeat(reg.Terminal.ID, fleet.Status{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.ConfigVersion != 42 {
			t.Fatalf("config version = %d, want 42", res.ConfigVersion)
		}
		if d := res.NextHeartbeat; d < 90*time.Second || d > 110*time.Second {
			t.Fatalf("next heartbeat %v outside 100s ±10%%", d)
		}
		seen[res.NextHeartbeat] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct intervals in 50 heartbeats: no jitter", len(seen))
	}
}

func TestCommandsDeliveryExpiryAndAck(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1")
	a := e.registered("SN1", "MID1", "s1").Terminal.ID
	b := e.registered("SN2", "MID1", "s1").Terminal.ID
	var notified []string
	e.f.OnCommand(func(id string) { notified = append(notified, id) })

	reboot, err := e.f.SendCommand(ctx, a, fleet.CommandReboot, map[string]string{"reason": "update"}, time.Hour, admin)
	if err != nil {
		t.Fatal(err)
	}
	short, err := e.f.SendCommand(ctx, a, fleet.CommandUploadLogs, nil, time.Minute, admin)
	if err != nil {
		t.Fatal(err)
	}
	if len(notified) != 2 || notified[0] != a {
		t.Errorf("OnCommand calls = %v, want two for %s", notified, a)
	}
	e.clock.Advance(2 * time.Minute) // short expired while the terminal was offline
	res, err := e.f.Heartbeat(a, fleet.Status{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Commands) != 1 || res.Commands[0].ID != reboot.ID || res.Commands[0].State != fleet.CommandDelivered {
		t.Fatalf("delivered %+v, want only %s, DELIVERED", res.Commands, reboot.ID)
	}
	if got := e.f.PendingCommands(b); len(got) != 0 {
		t.Errorf("terminal b has commands %+v", got)
	}
	for _, tc := range []struct {
		name     string
		terminal string
		id       string
		ok       bool
		want     error
	}{
		{"other terminal's command", b, reboot.ID, true, fleet.ErrCommandNotOwned},
		{"unknown command", a, a + "-00000000000000ff", true, fleet.ErrCommandNotFound},
		{"malformed ID", a, "nope", true, fleet.ErrCommandNotFound},
		{"expired command", a, short.ID, true, fleet.ErrCommandExpired},
		{"ack", a, reboot.ID, true, nil},
		{"repeated ack", a, reboot.ID, true, nil},
		{"conflicting ack", a, reboot.ID, false, fleet.ErrCommandFinished},
	} {
		err := e.f.AckCommand(ctx, tc.terminal, tc.id, tc.ok, "done", audit.Actor{Name: "terminal:" + tc.terminal})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: AckCommand = %v, want %v", tc.name, err, tc.want)
		}
	}
	if got := e.f.PendingCommands(a); len(got) != 0 {
		t.Errorf("pending after ack and expiry: %+v", got)
	}
	if err := e.f.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	e = e.reopen()
	list, next, err := e.f.ListCommands(ctx, a, 10, "")
	if err != nil || next != "" {
		t.Fatalf("ListCommands: %v (next %q)", err, next)
	}
	got := map[string]fleet.CommandState{}
	for _, c := range list {
		got[c.ID] = c.State
	}
	if len(list) != 2 || list[0].ID != short.ID || got[reboot.ID] != fleet.CommandSucceeded || got[short.ID] != fleet.CommandExpired {
		t.Errorf("commands after restart = %+v, want newest first: %s EXPIRED, %s SUCCEEDED", list, short.ID, reboot.ID)
	}
	if list[1].Parameters["reason"] != "update" || list[1].Detail != "done" {
		t.Errorf("reboot after restart = %+v, want its parameters and ack detail", list[1])
	}
}

func TestUndeliveredCommandSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	a := e.registered("SN1", "MID1", "s1").Terminal.ID
	c, err := e.f.SendCommand(t.Context(), a, fleet.CommandLock, nil, 0, admin)
	if err != nil {
		t.Fatal(err)
	}
	e = e.reopen()
	got := e.f.PendingCommands(a)
	if len(got) != 1 || got[0].ID != c.ID || got[0].Type != fleet.CommandLock {
		t.Fatalf("pending after restart = %+v, want %s", got, c.ID)
	}
}

func TestHeartbeatStatusAndFaultsPersistWithoutPerCallWrites(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1", "s2")
	a := e.registered("SN1", "MID1", "s1").Terminal.ID
	b := e.registered("SN2", "MID1", "s2").Terminal.ID
	faults := []fleet.Fault{
		{Component: "printer", Code: "P1", Time: e.clock.Now()},
		{Component: "printer", Code: "P2", Time: e.clock.Now()},
		{Component: "card_reader", Code: "C1", Time: e.clock.Now()},
	}
	if _, err := e.f.Heartbeat(a, fleet.Status{FirmwareVersion: "fw1", AppVersion: "app1", ConfigVersion: 3, HasBattery: true, BatteryPercent: 77}, faults); err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.Heartbeat(b, fleet.Status{FirmwareVersion: "fw2", AppVersion: "app1"}, faults[2:]); err != nil {
		t.Fatal(err)
	}
	// Close flushes what is pending; the reopened fleet has it all.
	e = e.reopen()
	v, err := e.f.Terminal(a)
	if err != nil {
		t.Fatal(err)
	}
	if v.LastStatus.FirmwareVersion != "fw1" || v.LastStatus.BatteryPercent != 77 || v.LastHeartbeat.IsZero() {
		t.Errorf("status after restart = %+v at %v", v.LastStatus, v.LastHeartbeat)
	}
	if len(v.RecentFaults) != 3 || v.RecentFaults[0].Code != "C1" {
		t.Errorf("recent faults after restart = %+v, want 3, newest (C1) first", v.RecentFaults)
	}
	rep, err := e.f.Report("", "")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rep.FaultsByComponent) != "[{card_reader 2} {printer 2}]" {
		t.Errorf("faults by component = %v", rep.FaultsByComponent)
	}
	if fmt.Sprint(rep.FirmwareVersions) != "[{fw1 1} {fw2 1}]" || fmt.Sprint(rep.AppVersions) != "[{app1 2}]" {
		t.Errorf("versions = %v / %v", rep.FirmwareVersions, rep.AppVersions)
	}
	scoped, err := e.f.Report("MID1", "s2")
	if err != nil {
		t.Fatal(err)
	}
	if scoped.Total != 1 || len(scoped.Faults) != 1 || scoped.Faults[0].Component != "card_reader" || scoped.Faults[0].StoreID != "s2" {
		t.Errorf("store report = %+v", scoped)
	}
	// Faults age out of the report after the retention period.
	e.clock.Advance(e.opts.FaultRetention + time.Hour)
	e = e.reopen()
	rep, _ = e.f.Report("", "")
	if len(rep.Faults) != 0 {
		t.Errorf("faults older than the retention: %v", rep.Faults)
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1")
	e.merchant("MID2", "x1")
	name := "Kiwi Two"
	if _, err := e.f.UpdateMerchant(ctx, "MID1", fleet.MerchantUpdate{DisplayName: &name}, admin); err != nil {
		t.Fatal(err)
	}
	active := e.registered("SN1", "MID1", "s1")
	suspended := e.registered("SN2", "MID1", "s1")
	if _, err := e.f.Suspend(ctx, suspended.Terminal.ID, "review", admin); err != nil {
		t.Fatal(err)
	}
	pending := e.provision("SN3", "MID2", "x1")
	retired := e.registered("SN4", "MID1", "s1")
	if _, err := e.f.Retire(ctx, retired.Terminal.ID, "lost", admin); err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.Rebind(ctx, active.Terminal.ID, "MID2", "x1", "moved", admin); err != nil {
		t.Fatal(err)
	}
	before, _ := e.f.Identity(active.Terminal.ID)
	keys := e.f.PublicKeys()

	e = e.reopen()
	m, err := e.f.Merchant("MID1")
	if err != nil || m.DisplayName != "Kiwi Two" || m.IdentityVersion != 2 {
		t.Errorf("MID1 after restart = %+v, %v", m, err)
	}
	if st, _, _ := e.f.ListStores("", 10, "", false); len(st) != 2 {
		t.Errorf("stores after restart = %v", st)
	}
	if ref, err := e.f.Authenticate(active.Credential); err != nil || ref.MerchantID != "MID2" {
		t.Errorf("active credential after restart: %+v, %v", ref, err)
	}
	if _, err := e.f.Authenticate(suspended.Credential); !errors.Is(err, fleet.ErrTerminalSuspended) {
		t.Errorf("suspended credential after restart: %v", err)
	}
	if _, err := e.f.Authenticate(retired.Credential); !errors.Is(err, fleet.ErrTerminalRetired) {
		t.Errorf("retired credential after restart: %v", err)
	}
	if _, err := e.register("SN3", pending.EnrollmentCode); err != nil {
		t.Errorf("pending enrollment after restart: %v", err)
	}
	if _, err := e.f.Provision(ctx, fleet.ProvisionRequest{Serial: "SN1", MerchantID: "MID1", StoreID: "s1"}, admin); !errors.Is(err, fleet.ErrSerialInUse) {
		t.Errorf("serial index after restart: %v, want ErrSerialInUse", err)
	}
	if _, err := e.f.Provision(ctx, fleet.ProvisionRequest{Serial: "SN4", MerchantID: "MID1", StoreID: "s1"}, admin); err != nil {
		t.Errorf("retired serial after restart: %v, want it free", err)
	}
	after, _ := e.f.Identity(active.Terminal.ID)
	if after.KeyID != before.KeyID || after.IdentityVersion != before.IdentityVersion || after.MerchantID != "MID2" {
		t.Errorf("identity after restart = key %s v%d %s, want key %s v%d MID2", after.KeyID, after.IdentityVersion, after.MerchantID, before.KeyID, before.IdentityVersion)
	}
	if got := e.f.PublicKeys(); len(got) != 1 || got[0].KeyID != keys[0].KeyID {
		t.Errorf("signing keys after restart = %v, want %v", got, keys)
	}
}

func TestListPagination(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.merchant(fmt.Sprintf("M%d", i), "a", "b")
	}
	var ids []string
	tok := ""
	for {
		page, next, err := e.f.ListMerchants(2, tok, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page {
			ids = append(ids, m.ID)
		}
		if next == "" {
			break
		}
		tok = next
	}
	if fmt.Sprint(ids) != "[M0 M1 M2 M3 M4]" {
		t.Errorf("merchants over pages = %v", ids)
	}
	var stores []string
	tok = ""
	for {
		page, next, err := e.f.ListStores("", 3, tok, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page {
			stores = append(stores, s.MerchantID+"/"+s.ID)
		}
		if next == "" {
			break
		}
		tok = next
	}
	if len(stores) != 10 || stores[0] != "M0/a" || stores[9] != "M4/b" {
		t.Errorf("stores over pages = %v", stores)
	}
	for i := range 7 {
		e.provision(fmt.Sprintf("SN%d", i), "M1", "a")
	}
	e.provision("OTHER", "M2", "a")
	var tids []string
	tok = ""
	for {
		page, next, err := e.f.ListTerminals(fleet.TerminalFilter{MerchantID: "M1"}, 3, tok)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page {
			tids = append(tids, v.ID)
		}
		if next == "" {
			break
		}
		tok = next
	}
	if len(tids) != 7 {
		t.Errorf("terminals of M1 over pages = %d, want 7", len(tids))
	}
	for i := 1; i < len(tids); i++ {
		if tids[i-1] >= tids[i] {
			t.Errorf("terminals out of order: %v", tids)
		}
	}
	if _, _, err := e.f.ListMerchants(2, "garbage!", false); !errors.Is(err, fleet.ErrBadPageToken) {
		t.Errorf("bad page token: %v, want ErrBadPageToken", err)
	}
}

func TestTerminalChangeHookAndRefs(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1", "s2")
	var got []string
	e.f.OnTerminalChange(func(r fleet.TerminalRef) { got = append(got, r.State.String()+":"+r.StoreID) })
	p := e.provision("SN1", "MID1", "s1")
	if _, err := e.register("SN1", p.EnrollmentCode); err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.Rebind(ctx, p.Terminal.ID, "MID1", "s2", "move", admin); err != nil {
		t.Fatal(err)
	}
	refs := e.f.Terminals()
	if len(refs) != 1 || refs[0].StoreID != "s2" || refs[0].State != fleet.StateActive {
		t.Errorf("Terminals() = %+v", refs)
	}
	if _, err := e.f.Retire(ctx, p.Terminal.ID, "x", admin); err != nil {
		t.Fatal(err)
	}
	if want := "[PROVISIONED:s1 ACTIVE:s1 ACTIVE:s2 RETIRED:s2]"; fmt.Sprint(got) != want {
		t.Errorf("changes = %v, want %s", got, want)
	}
	if refs := e.f.Terminals(); len(refs) != 0 {
		t.Errorf("retired terminal still listed: %+v", refs)
	}
	b, ok := e.f.Binding(p.Terminal.ID)
	if !ok || b.Currency != "NZD" || b.MCC != "5411" || b.State != fleet.StateRetired {
		t.Errorf("Binding = %+v, %v", b, ok)
	}
}

func TestConcurrentUse(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1", "s2")
	regs := make([]fleet.Registration, 8)
	for i := range regs {
		regs[i] = e.registered(fmt.Sprintf("SN%d", i), "MID1", "s1")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	beats := 0 // heartbeats accepted (a suspended terminal's are refused)
	for i, r := range regs {
		wg.Go(func() {
			for j := range 50 {
				_, err := e.f.Heartbeat(r.Terminal.ID, fleet.Status{ConfigVersion: uint64(j)}, []fleet.Fault{{Component: "printer", Time: e.clock.Now()}})
				if errors.Is(err, fleet.ErrTerminalSuspended) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				beats++
				mu.Unlock()
				if _, err := e.f.Authenticate(r.Credential); err != nil && !errors.Is(err, fleet.ErrTerminalSuspended) {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			if i%2 == 0 {
				if _, err := e.f.Rebind(ctx, r.Terminal.ID, "MID1", "s2", "move", admin); err != nil {
					t.Error(err)
				}
			} else if _, err := e.f.Suspend(ctx, r.Terminal.ID, "x", admin); err != nil {
				t.Error(err)
			}
			if _, err := e.f.SendCommand(ctx, r.Terminal.ID, fleet.CommandReboot, nil, 0, admin); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			if err := e.f.Flush(ctx); err != nil {
				t.Error(err)
			}
			if _, err := e.f.Report("", ""); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	rep, _ := e.f.Report("", "")
	if want := fmt.Sprintf("[{printer %d}]", beats); beats < 200 || fmt.Sprint(rep.FaultsByComponent) != want {
		t.Errorf("faults = %v, want %s (one per accepted heartbeat, at least the 200 of never-suspended terminals)", rep.FaultsByComponent, want)
	}
}

func TestDefaultOptionsValidate(t *testing.T) {
	o := fleet.DefaultOptions()
	if err := o.Validate(); err == nil {
		t.Error("options without NewSecret validated")
	}
	o.NewSecret = testSecret
	if err := o.Validate(); err != nil {
		t.Errorf("default options: %v", err)
	}
	bad := []func(*fleet.Options){
		func(o *fleet.Options) { o.FlushInterval = 0 },
		func(o *fleet.Options) { o.HeartbeatInterval = time.Millisecond },
		func(o *fleet.Options) { o.SerialAttempts = 0 },
		func(o *fleet.Options) { o.PeerFailuresPerMinute = 0 },
	}
	for i, mut := range bad {
		c := o
		mut(&c)
		if c.Validate() == nil {
			t.Errorf("case %d validated", i)
		}
	}
}

// A fault past retention but not yet pruned when the server stopped was
// not counted at load, yet pruning it afterwards took one off the count of
// its store and component: a fault still in retention vanished from the
// report. Every stored fault is now counted at load and expired ones are
// pruned before the fleet opens.
func TestFaultCountsSurviveRestartWithExpiredFaultsOnDisk(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	id := e.registered("SN1", "MID1", "s1").Terminal.ID
	fault := func(code string) {
		if _, err := e.f.Heartbeat(id, fleet.Status{}, []fleet.Fault{{Component: "printer", Code: code, Time: e.clock.Now()}}); err != nil {
			t.Fatal(err)
		}
	}
	fault("OLD")
	e.clock.Advance(e.opts.FaultRetention - 24*time.Hour)
	fault("NEW")
	e.clock.Advance(24*time.Hour + time.Minute) // OLD expired, NEW not
	e = e.reopen()
	for _, when := range []string{"after reopen", "after the hourly prune"} {
		rep, err := e.f.Report("", "")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(rep.FaultsByComponent) != "[{printer 1}]" {
			t.Errorf("faults by component %s = %v, want [{printer 1}]", when, rep.FaultsByComponent)
		}
		if err := e.f.PruneFaults(e.clock.Now().Add(-e.opts.FaultRetention)); err != nil {
			t.Fatal(err)
		}
	}
}

// Fault counts are keyed by a component name the terminal chooses; a count
// that reaches zero is deleted, so the map does not keep every name ever
// reported.
func TestPrunedFaultCountsAreForgotten(t *testing.T) {
	opts := fleet.DefaultOptions()
	opts.FaultComponentsPerTerminal, opts.FaultBurst = 40*32, 40*32 // lift the caps
	e := openEnv(t, t.TempDir(), testclock.New(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)), opts)
	e.merchant("MID1", "s1")
	id := e.registered("SN1", "MID1", "s1").Terminal.ID
	for i := range 40 {
		faults := make([]fleet.Fault, 32)
		for j := range faults {
			faults[j] = fleet.Fault{Component: fmt.Sprintf("c%d-%d", i, j), Time: e.clock.Now()}
		}
		if _, err := e.f.Heartbeat(id, fleet.Status{}, faults); err != nil {
			t.Fatal(err)
		}
	}
	e = e.reopen() // writes the faults out
	if n := e.f.FaultCountKeys(); n != 40*32 {
		t.Fatalf("fault counts before pruning: %d keys, want %d", n, 40*32)
	}
	e.clock.Advance(e.opts.FaultRetention + time.Hour)
	if err := e.f.PruneFaults(e.clock.Now().Add(-e.opts.FaultRetention)); err != nil {
		t.Fatal(err)
	}
	if n := e.f.FaultCountKeys(); n != 0 {
		t.Errorf("fault counts after every fault was pruned: %d keys, want 0", n)
	}
}

// One terminal sending 3,000 heartbeats of 32 distinct fault components
// each used to add 96,000 stored faults and report rows, until
// GetFleetReport exceeded the 4 MiB message limit, for good (faults are
// kept 30 days). Its components beyond the per-terminal cap are filed under
// "(other)", its stored faults stop at its budget, and another terminal's
// faults are still counted.
func TestFaultFloodIsBounded(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	flood := e.registered("SN1", "MID1", "s1").Terminal.ID
	quiet := e.registered("SN2", "MID1", "s1").Terminal.ID
	const heartbeats, perBeat = 3000, 32
	for i := range heartbeats {
		faults := make([]fleet.Fault, perBeat)
		for j := range faults {
			faults[j] = fleet.Fault{Component: fmt.Sprintf("c%d-%d", i, j), Message: strings.Repeat("m", 200), Time: e.clock.Now()}
		}
		if _, err := e.f.Heartbeat(flood, fleet.Status{}, faults); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.f.Heartbeat(quiet, fleet.Status{}, []fleet.Fault{{Component: "printer", Code: "PAPER_OUT", Time: e.clock.Now()}}); err != nil {
		t.Fatal(err)
	}
	e = e.reopen() // writes the faults out and counts them back
	if n := e.f.FaultCountKeys(); n > e.opts.FaultComponentsPerTerminal+2 {
		t.Errorf("fault count keys = %d, want at most %d (the flooding terminal's cap, (other), printer)", n, e.opts.FaultComponentsPerTerminal+2)
	}
	rep, err := e.f.Report("", "")
	if err != nil {
		t.Fatal(err)
	}
	var stored uint64
	printer := false
	for _, c := range rep.FaultsByComponent {
		stored += c.Count
		printer = printer || c.Key == "printer"
	}
	t.Logf("fault flood: %d heartbeats × %d distinct components: %d faults stored, %d count keys", heartbeats, perBeat, stored, e.f.FaultCountKeys())
	if max := uint64(e.opts.FaultBurst + 1); stored > max {
		t.Errorf("stored faults = %d of %d sent, want at most the budget %d", stored, heartbeats*perBeat, max)
	}
	if !printer {
		t.Errorf("the quiet terminal's fault is missing from %v", rep.FaultsByComponent)
	}
	// Before the restart the counter held the dropped faults; after it, it
	// starts again, so check it on a fresh flood.
	if _, err := e.f.Heartbeat(flood, fleet.Status{}, make([]fleet.Fault, perBeat)); err != nil {
		t.Fatal(err)
	}
	e.f.Heartbeat(flood, fleet.Status{}, make([]fleet.Fault, e.opts.FaultBurst))
	if rep, _ := e.f.Report("", ""); rep.FaultsDropped == 0 {
		t.Error("faults over the budget not counted as dropped")
	}
}

// A report's lists are cut to ReportTop entries and one summing the rest,
// whatever the fleet reports: 300 terminals with distinct firmware.
func TestReportListsAreAggregated(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	const n = 300
	for i := range n {
		id := e.registered(fmt.Sprintf("SN%d", i), "MID1", "s1").Terminal.ID
		if _, err := e.f.Heartbeat(id, fleet.Status{FirmwareVersion: fmt.Sprintf("fw-%03d", i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := e.f.Report("", "")
	if err != nil {
		t.Fatal(err)
	}
	fw := rep.FirmwareVersions
	if len(fw) != fleet.ReportTop+1 {
		t.Fatalf("firmware versions = %d entries, want %d", len(fw), fleet.ReportTop+1)
	}
	if last := fw[len(fw)-1]; last.Key != fleet.OtherComponent || last.Count != n-fleet.ReportTop {
		t.Errorf("last entry = %v, want {%s %d}", last, fleet.OtherComponent, n-fleet.ReportTop)
	}
}
