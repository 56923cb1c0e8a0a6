package configpush_test

import (
	"strconv"
	"testing"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/configpush"
)

// TestRejectionAndHaltAuditedWithTheirCause: a terminal rejecting its
// current version leaves a CONFIG_REJECTED event committed with the
// acknowledgement, and the halt it causes a HALTED rollout event committed
// with the rollout's new state (both on disk when Ack returns, without a
// flush: webhooks read them from there); applying, or rejecting a version
// the terminal no longer runs, leaves no rejection event.
func TestRejectionAndHaltAuditedWithTheirCause(t *testing.T) {
	dir := newFakeDir()
	dir.add("M1", "S1", "T0000001", "T0000002")
	e := newEnv(t, dir)
	ctx := t.Context()
	ro := e.publish(global, &configpush.Settings{}, all)
	if err := e.eng.Ack(ctx, "T0000002", ro.Version, configpush.AckApplied, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.eng.Ack(ctx, "T0000001", ro.Version, configpush.AckRejected, "no printer"); err != nil {
		t.Fatal(err)
	}
	evs, _, err := e.audit.List(ctx, audit.Filter{Type: audit.ConfigRejected}, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 {
		t.Fatalf("got %d CONFIG_REJECTED events right after Ack, want 1", len(evs))
	}
	ev := evs[0]
	if ev.TerminalID != "T0000001" || ev.MerchantID != "M1" || ev.StoreID != "S1" || ev.Attributes["detail"] != "no printer" ||
		ev.Attributes["version"] != strconv.FormatUint(ro.Version, 10) {
		t.Fatalf("event %+v, want T0000001 of M1/S1 with the version and detail", ev)
	}

	// The rejection halted the rollout; that event too is on disk already.
	if got := e.rollout(ro.ID); got.State != configpush.StateHalted {
		t.Fatalf("rollout state %s after a rejection, want HALTED", got.State)
	}
	changes, _, err := e.audit.List(ctx, audit.Filter{Type: audit.RolloutChanged}, 10, "")
	if err != nil || len(changes) == 0 || changes[0].Attributes["state"] != "HALTED" {
		t.Fatalf("rollout events right after the halt: %+v (%v), want HALTED newest", changes, err)
	}

	// A newer version; the old one rejected late counts for nothing.
	e.publish(global, &configpush.Settings{}, all)
	if err := e.eng.Ack(ctx, "T0000002", ro.Version, configpush.AckRejected, "late"); err != nil {
		t.Fatal(err)
	}
	e.restart()
	evs, _, err = e.audit.List(ctx, audit.Filter{Type: audit.ConfigRejected}, 10, "")
	if err != nil || len(evs) != 1 {
		t.Fatalf("after restart: %d CONFIG_REJECTED events (%v), want the one", len(evs), err)
	}
}
