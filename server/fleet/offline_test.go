package fleet_test

import (
	"testing"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/fleet"
)

// TestOfflineDetector: a terminal silent for more than ten heartbeat
// intervals is reported once (the report survives a restart), its return
// clears the mark, and a second absence is reported again. A terminal
// never seen, or one seen before a server that was down itself, is not
// reported before it had ten intervals to call in.
func TestOfflineDetector(t *testing.T) {
	e := newEnv(t)
	e.merchant("M1", "S1")
	reg := e.registered("SN-OFF-1", "M1", "S1")
	e.provision("SN-OFF-2", "M1", "S1") // never seen
	id := reg.Terminal.ID
	interval := e.opts.HeartbeatInterval
	ctx := t.Context()

	sweep := func(d *fleet.OfflineDetector, want int) {
		t.Helper()
		n, err := d.Sweep(ctx)
		if err != nil || n != want {
			t.Fatalf("Sweep: got %d reports (%v), want %d", n, err, want)
		}
	}
	committed := func() []audit.Event {
		t.Helper()
		// No flush: the reports are committed with their marks.
		evs, _, err := e.audit.List(ctx, audit.Filter{Type: audit.TerminalOffline}, 100, "")
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}

	d, err := e.f.NewOfflineDetector()
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(9 * interval)
	sweep(d, 0) // stale, not offline
	e.clock.Advance(2 * interval)
	sweep(d, 1)
	if evs := committed(); len(evs) != 1 || evs[0].TerminalID != id || evs[0].MerchantID != "M1" || evs[0].Attributes["last_seen"] == "" {
		t.Fatalf("offline events: %+v, want one for %s of M1 with its last contact", evs, id)
	}
	sweep(d, 0) // once per absence

	e = e.reopen()
	d, err = e.f.NewOfflineDetector()
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(11 * interval)
	sweep(d, 0) // the mark survived the restart

	if _, err := e.f.Heartbeat(id, fleet.Status{}, nil); err != nil {
		t.Fatal(err)
	}
	sweep(d, 0) // back: the mark is cleared
	e.clock.Advance(11 * interval)
	sweep(d, 1)
	if n := len(committed()); n != 2 {
		t.Fatalf("offline events after a second absence: %d, want 2", n)
	}

	// A new detector (a server that was down) waits ten intervals from its
	// own start before reporting a terminal last seen long ago.
	reg3 := e.registered("SN-OFF-3", "M1", "S1")
	e.clock.Advance(20 * interval)
	d2, err := e.f.NewOfflineDetector()

	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(5 * interval)
	sweep(d2, 0)
	e.clock.Advance(6 * interval)
	sweep(d2, 1) // the one still marked is not reported again
	if evs := committed(); evs[0].TerminalID != reg3.Terminal.ID {
		t.Fatalf("newest offline event is for %s, want %s", evs[0].TerminalID, reg3.Terminal.ID)
	}
}
