package fleet_test

import (
	"fmt"
	"testing"

	"github.com/posfleet/posfleet/server/fleet"
)

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
