package fleet_test

import (
	"errors"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/fleet"
	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// TestHeartbeatStateKeptWhileDiskLow checks that while disk space is low,
// admin writes are refused with store.ErrDiskLow and the heartbeat flush
// keeps its pending state instead of dropping it; once space returns the
// state is written.
func TestHeartbeatStateKeptWhileDiskLow(t *testing.T) {
	storetest.RequireBadger(t, "the disk-space watch")
	e := newEnv(t)
	e.merchant("MID1", "s1")
	a := e.registered("SN1", "MID1", "s1").Terminal.ID
	// Measured once at start, below the reserve; closing the monitor
	// stands for space returning.
	sp, err := store.WatchSpace(e.db, store.SpaceOptions{Interval: time.Hour,
		Statfs: func() (int64, error) { return 1 << 20, nil }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if _, err := e.f.CreateMerchant(t.Context(), fleet.Merchant{ID: "MID2", LegalName: "x", MCC: "5411", Currency: "NZD"}, admin); !errors.Is(err, store.ErrDiskLow) {
		t.Errorf("CreateMerchant while low: got %v, want ErrDiskLow", err)
	}
	if _, err := e.f.Heartbeat(a, fleet.Status{FirmwareVersion: "fw-low"}, []fleet.Fault{{Component: "printer", Code: "P1", Time: e.clock.Now()}}); err != nil {
		t.Fatal(err)
	}
	if err := e.f.Flush(t.Context()); !errors.Is(err, store.ErrDiskLow) {
		t.Errorf("Flush while low: got %v, want ErrDiskLow", err)
	}
	sp.Close()
	if err := e.f.Flush(t.Context()); err != nil {
		t.Fatalf("Flush once space returned: %v", err)
	}
	e = e.reopen()
	v, err := e.f.Terminal(a)
	if err != nil {
		t.Fatal(err)
	}
	if v.LastStatus.FirmwareVersion != "fw-low" || len(v.RecentFaults) != 1 {
		t.Errorf("after restart: status %+v, faults %+v; want the heartbeat sent while low", v.LastStatus, v.RecentFaults)
	}
}
