package fleet_test

import (
	"fmt"
	"testing"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/fleet"
)

// A fleet report counts the merchant-mismatch alerts of its scope's
// terminals, retired ones included; the whole fleet's report counts every
// alert.
func TestReportCountsMismatchAlertsOfItsScope(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1", "s2")
	e.merchant("MID2", "s1")
	a := e.registered("SNA", "MID1", "s1").Terminal.ID
	b := e.registered("SNB", "MID1", "s2").Terminal.ID
	c := e.registered("SNC", "MID2", "s1").Terminal.ID
	for _, claim := range []struct{ terminal, merchant string }{
		{a, "MID8"}, {a, "MID9"}, {c, "MID7"}, {b, "MID1"}, // the last one matches
	} {
		if _, _, err := e.f.VerifyMerchant(t.Context(), claim.terminal, claim.merchant, audit.Actor{Name: "terminal:" + claim.terminal}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.f.Retire(t.Context(), a, "stolen", admin); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		merchant, store string
		wantTotal       uint64
		wantTerminals   []fleet.Count
	}{
		{"", "", 3, []fleet.Count{{Key: a, Count: 2}, {Key: c, Count: 1}}},
		{"MID1", "", 2, []fleet.Count{{Key: a, Count: 2}}},
		{"MID1", "s2", 0, []fleet.Count{}},
		{"MID2", "s1", 1, []fleet.Count{{Key: c, Count: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.merchant+"/"+tt.store, func(t *testing.T) {
			rep, err := e.f.Report(tt.merchant, tt.store)
			if err != nil {
				t.Fatal(err)
			}
			if rep.MismatchAlerts != tt.wantTotal {
				t.Errorf("got %d mismatch alerts, want %d", rep.MismatchAlerts, tt.wantTotal)
			}
			if got, want := fmt.Sprint(rep.MismatchTerminals), fmt.Sprint(tt.wantTerminals); got != want {
				t.Errorf("got mismatch terminals %s, want %s", got, want)
			}
		})
	}
}
