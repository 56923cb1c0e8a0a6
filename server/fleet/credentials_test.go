package fleet_test

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/fleet"
)

// stages returns the "stage" attributes of a terminal's audit events of one
// type, oldest first.
func (e *env) stages(typ audit.Type, terminalID string) []string {
	e.t.Helper()
	evs := e.events(typ)
	var out []string
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].TerminalID == terminalID {
			out = append(out, evs[i].Attributes["stage"])
		}
	}
	return out
}

func TestRegisterLostResponseRecovered(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	p := e.provision("SN1", "MID1", "s1")

	lost, err := e.register("SN1", p.EnrollmentCode)
	if err != nil {
		t.Fatal(err)
	}
	// The response never reached the terminal: it retries with the same code.
	reg, err := e.register("SN1", p.EnrollmentCode)
	if err != nil {
		t.Fatalf("retried Register: %v, want a fresh credential", err)
	}
	if reg.Credential == lost.Credential {
		t.Fatal("retried Register returned the lost credential again; want a fresh one")
	}
	if _, err := e.f.Authenticate(lost.Credential); !errors.Is(err, fleet.ErrBadCredential) {
		t.Errorf("lost credential after the retry: %v, want ErrBadCredential", err)
	}
	if ref, err := e.f.Authenticate(reg.Credential); err != nil || ref.TerminalID != p.Terminal.ID {
		t.Fatalf("Authenticate(retried credential) = %+v, %v; want terminal %s", ref, err, p.Terminal.ID)
	}
	// After the first use the code is spent, also across a restart.
	if _, err := e.register("SN1", p.EnrollmentCode); !errors.Is(err, fleet.ErrEnrollmentUsed) {
		t.Errorf("Register after the credential's first use: %v, want ErrEnrollmentUsed", err)
	}
	e = e.reopen()
	if _, err := e.register("SN1", p.EnrollmentCode); !errors.Is(err, fleet.ErrEnrollmentUsed) {
		t.Errorf("Register after restart: %v, want ErrEnrollmentUsed", err)
	}
	if _, err := e.f.Authenticate(reg.Credential); err != nil {
		t.Errorf("credential after restart: %v", err)
	}
	if got, want := e.stages(audit.TerminalRegistered, p.Terminal.ID), []string{"issued", "issued", "confirmed"}; !slices.Equal(got, want) {
		t.Errorf("registration audit stages = %v, want %v", got, want)
	}
}

func TestRegisterRetryPastExpiry(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after time.Duration // after the code's expiry
		want  error
	}{
		{"within the retry window", time.Hour, nil},
		{"past the retry window", 25 * time.Hour, fleet.ErrEnrollmentExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.merchant("MID1", "s1")
			p := e.provision("SN1", "MID1", "s1")
			e.clock.Advance(e.opts.EnrollmentTTL - time.Second)
			if _, err := e.register("SN1", p.EnrollmentCode); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Second + tc.after)
			if _, err := e.register("SN1", p.EnrollmentCode); !errors.Is(err, tc.want) {
				t.Errorf("retry %v after expiry: %v, want %v", tc.after, err, tc.want)
			}
		})
	}
}

func TestRotateCredentialLostResponseRecovered(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1")
	reg := e.registered("SN1", "MID1", "s1")
	id := reg.Terminal.ID
	who := audit.Actor{Name: "terminal:" + id}
	if _, err := e.f.Authenticate(reg.Credential); err != nil {
		t.Fatal(err)
	}

	lost, err := e.f.RotateCredential(ctx, id, who)
	if err != nil {
		t.Fatal(err)
	}
	// The response was lost: the old credential still works, and rotating
	// again with it issues another one.
	if _, err := e.f.Authenticate(reg.Credential); err != nil {
		t.Fatalf("old credential before the new one is used: %v", err)
	}
	rotated, err := e.f.RotateCredential(ctx, id, who)
	if err != nil {
		t.Fatalf("retried RotateCredential: %v", err)
	}
	if _, err := e.f.Authenticate(lost); !errors.Is(err, fleet.ErrBadCredential) {
		t.Errorf("lost rotated credential after the retry: %v, want ErrBadCredential", err)
	}
	if _, err := e.f.Authenticate(reg.Credential); err != nil {
		t.Fatalf("old credential after the retried rotation: %v", err)
	}
	if ref, err := e.f.Authenticate(rotated); err != nil || ref.TerminalID != id {
		t.Fatalf("Authenticate(rotated) = %+v, %v; want terminal %s", ref, err, id)
	}
	// The first use of the new credential revoked the old one, durably.
	e = e.reopen()
	if _, err := e.f.Authenticate(reg.Credential); !errors.Is(err, fleet.ErrBadCredential) {
		t.Errorf("old credential after the new one's first use: %v, want ErrBadCredential", err)
	}
	if _, err := e.f.Authenticate(rotated); err != nil {
		t.Errorf("rotated credential after restart: %v", err)
	}
	if got, want := e.stages(audit.CredentialRotated, id), []string{"issued", "issued", "confirmed"}; !slices.Equal(got, want) {
		t.Errorf("rotation audit stages = %v, want %v", got, want)
	}
}

func TestReissuedCodeIsNotARetry(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1")
	p := e.provision("SN1", "MID1", "s1")
	first, err := e.register("SN1", p.EnrollmentCode)
	if err != nil {
		t.Fatal(err)
	}
	code, _, err := e.f.ReissueEnrollment(ctx, p.Terminal.ID, time.Minute, admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.register("SN1", p.EnrollmentCode); !errors.Is(err, fleet.ErrEnrollmentInvalid) {
		t.Errorf("replaced code: %v, want ErrEnrollmentInvalid", err)
	}
	// The reissued code has issued nothing: no retry window past its expiry.
	e.clock.Advance(2 * time.Minute)
	if _, err := e.register("SN1", code); !errors.Is(err, fleet.ErrEnrollmentExpired) {
		t.Errorf("expired reissued code: %v, want ErrEnrollmentExpired", err)
	}
	if _, err := e.f.Authenticate(first.Credential); err != nil {
		t.Errorf("credential of the first registration: %v", err)
	}
}

// Concurrent first uses of one new credential all succeed and confirm it
// once; a retried Register racing the first use either replaces the
// credential (the code stays pending) or is refused (the code is spent),
// never both.
func TestCredentialFirstUseRaces(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	for i := range 8 {
		serial := "SN" + strconv.Itoa(i)
		p := e.provision(serial, "MID1", "s1")
		first, err := e.register(serial, p.EnrollmentCode)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		authErrs := make([]error, 4)
		var retry fleet.Registration
		var retryErr error
		for j := range authErrs {
			wg.Go(func() { _, authErrs[j] = e.f.Authenticate(first.Credential) })
		}
		wg.Go(func() { retry, retryErr = e.register(serial, p.EnrollmentCode) })
		wg.Wait()
		_, firstErr := e.f.Authenticate(first.Credential)
		switch {
		case retryErr == nil:
			if !errors.Is(firstErr, fleet.ErrBadCredential) {
				t.Errorf("%s: retry won, but the first credential still works: %v", serial, firstErr)
			}
			if _, err := e.f.Authenticate(retry.Credential); err != nil {
				t.Errorf("%s: retried credential: %v", serial, err)
			}
		case errors.Is(retryErr, fleet.ErrEnrollmentUsed):
			if firstErr != nil {
				t.Errorf("%s: the code is spent, but the first credential fails: %v", serial, firstErr)
			}
			for _, err := range authErrs {
				if err != nil {
					t.Errorf("%s: a concurrent first use failed although the credential was kept: %v", serial, err)
				}
			}
		default:
			t.Errorf("%s: retried Register: %v", serial, retryErr)
		}
		stages := e.stages(audit.TerminalRegistered, p.Terminal.ID)
		if n := len(stages); n > 3 || stages[n-1] != "confirmed" || slices.Index(stages, "confirmed") != n-1 {
			t.Errorf("%s: registration audit stages %v, want one or two issued, then one confirmed", serial, stages)
		}
	}
}
