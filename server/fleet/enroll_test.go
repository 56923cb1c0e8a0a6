package fleet_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/fleet"
)

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
			reg, err := e.register("SN1", p.EnrollmentCode)
			if err != nil {
				e.t.Fatal(err)
			}
			// The first use of the credential consumes the code.
			if _, err := e.f.Authenticate(reg.Credential); err != nil {
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
	if _, err := e.f.Authenticate(rotated); err != nil {
		t.Errorf("rotated credential: %v", err)
	}
	if _, err := e.f.Authenticate(reg.Credential); !errors.Is(err, fleet.ErrBadCredential) {
		t.Errorf("old credential after the rotated one was used: %v, want ErrBadCredential", err)
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
