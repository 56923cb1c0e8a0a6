package fleet_test

import (
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/fleet"
)

// TestChangeEventsCommittedWithTheChange checks that when an admin change
// returns, its audit event is already in the database: listed without a
// Flush, from the committed data. An event queued for the batched writer
// (written after the answer) is not there yet.
func TestChangeEventsCommittedWithTheChange(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.merchant("M1", "S1")
	e.merchant("M2", "S2")
	reg := e.registered("SN-REG", "M1", "S1")
	tid := e.provision("SN-1", "M1", "S1").Terminal.ID
	name := "renamed"
	cases := []struct {
		name string
		typ  audit.Type
		do   func() error
	}{
		{"create merchant", audit.MerchantCreated, func() error {
			_, err := e.f.CreateMerchant(ctx, fleet.Merchant{ID: "M3", LegalName: "M3 Ltd", MCC: "5411", Currency: "NZD"}, admin)
			return err
		}},
		{"update merchant", audit.MerchantUpdated, func() error {
			_, err := e.f.UpdateMerchant(ctx, "M3", fleet.MerchantUpdate{DisplayName: &name}, admin)
			return err
		}},
		{"create store", audit.StoreCreated, func() error {
			_, err := e.f.CreateStore(ctx, fleet.Store{MerchantID: "M3", ID: "S3", Name: "Three"}, admin)
			return err
		}},
		{"provision", audit.TerminalProvisioned, func() error {
			_, err := e.f.Provision(ctx, fleet.ProvisionRequest{Serial: "SN-2", MerchantID: "M1", StoreID: "S1"}, admin)
			return err
		}},
		{"register", audit.TerminalRegistered, func() error {
			p := e.provision("SN-3", "M1", "S1")
			_, err := e.register("SN-3", p.EnrollmentCode)
			return err
		}},
		{"suspend", audit.TerminalSuspended, func() error { _, err := e.f.Suspend(ctx, tid, "test", admin); return err }},
		{"reactivate", audit.TerminalReactivated, func() error { _, err := e.f.Reactivate(ctx, tid, "test", admin); return err }},
		{"reissue enrollment", audit.EnrollmentReissued, func() error {
			_, _, err := e.f.ReissueEnrollment(ctx, tid, time.Hour, admin)
			return err
		}},
		{"rebind", audit.TerminalRebound, func() error { _, err := e.f.Rebind(ctx, tid, "M2", "S2", "test", admin); return err }},
		{"rotate credential", audit.CredentialRotated, func() error {
			_, err := e.f.RotateCredential(ctx, reg.Terminal.ID, admin)
			return err
		}},
		{"send command", audit.CommandSent, func() error {
			_, err := e.f.SendCommand(ctx, reg.Terminal.ID, fleet.CommandReboot, nil, time.Hour, admin)
			return err
		}},
		{"retire", audit.TerminalRetired, func() error { _, err := e.f.Retire(ctx, tid, "test", admin); return err }},
	}
	for _, c := range cases {
		before := e.audit.Count(c.typ)
		if err := c.do(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		// No Flush: only what was committed with the change is listed.
		evs, _, err := e.audit.List(ctx, audit.Filter{Type: c.typ}, 1000, "")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := uint64(len(evs)), before+1; got < want {
			t.Errorf("%s: got %d %v events on disk when the call returned, want %d", c.name, got, c.typ, want)
		}
		if got := e.audit.Count(c.typ); got != before+1 && c.typ != audit.TerminalRebound {
			t.Errorf("%s: count got %d, want %d", c.name, got, before+1)
		}
	}
}
