package fleet_test

import (
	"testing"

	"github.com/posfleet/posfleet/server/fleet"
)

func TestCountByConnectivityAgreesWithReport(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	quiet := e.registered("SN1", "MID1", "s1").Terminal.ID
	busy := e.registered("SN2", "MID1", "s1").Terminal.ID
	e.provision("SN3", "MID1", "s1")
	e.clock.Advance(11 * e.opts.HeartbeatInterval)
	if _, err := e.f.Heartbeat(busy, fleet.Status{}, nil); err != nil {
		t.Fatal(err)
	}
	got := e.f.CountByConnectivity()
	want := map[fleet.Connectivity]uint64{fleet.Online: 1, fleet.Offline: 1, fleet.NeverSeen: 1}
	if len(got) != len(want) || got[fleet.Online] != 1 || got[fleet.Offline] != 1 || got[fleet.NeverSeen] != 1 {
		t.Errorf("CountByConnectivity() = %v, want %v (%s offline)", got, want, quiet)
	}
	rep, err := e.f.Report("", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.ByConnectivity {
		var k fleet.Connectivity
		for _, x := range []fleet.Connectivity{fleet.Online, fleet.Stale, fleet.Offline, fleet.NeverSeen} {
			if x.String() == c.Key {
				k = x
			}
		}
		if got[k] != c.Count {
			t.Errorf("%s: CountByConnectivity %d, Report %d", c.Key, got[k], c.Count)
		}
	}
}
