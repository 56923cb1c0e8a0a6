package configpush_test

import (
	"slices"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/configpush"
)

// released returns which of ids run version v or newer, once the engine's
// loop has had ten evaluation intervals to release versions.
func (e *env) released(v uint64, ids ...string) []string {
	e.t.Helper()
	time.Sleep(50 * time.Millisecond)
	var out []string
	for _, tid := range ids {
		if e.eff(tid).Version >= v {
			out = append(out, tid)
		}
	}
	return out
}

// setClock moves the test clock to t (forward only).
func (e *env) setClock(t time.Time) {
	e.t.Helper()
	d := t.Sub(e.clock.Now())
	if d < 0 {
		e.t.Fatalf("setClock(%v): before the clock's %v", t, e.clock.Now())
	}
	e.clock.Advance(d)
}

func TestMaintenanceWindowWithJitter(t *testing.T) {
	dir := newFakeDir()
	ids := tids("T", 20)
	dir.add("M1", "S1", ids...)
	e := newEnv(t, dir)
	// The clock starts at 2025-03-01 12:00 UTC; the store has no zone: UTC.
	w := e.watch(ids[0], e.eff(ids[0]).Version)
	ro := e.publish(merchant, &configpush.Settings{ReceiptFooter: ptr("new")}, configpush.Plan{
		Window: &configpush.Window{Start: 2 * 60, End: 5 * 60, Jitter: 10 * time.Minute},
	})
	if got := e.released(ro.Version, ids...); len(got) != 0 {
		t.Fatalf("outside the window %d terminals got the version, want 0: %v", len(got), got)
	}
	if got := e.rollout(ro.ID); got.State != configpush.StateRunning {
		t.Fatalf("rollout %s before the window, want RUNNING", got.State)
	}
	e.setClock(time.Date(2025, 3, 2, 1, 59, 0, 0, time.UTC))
	if got := e.released(ro.Version, ids...); len(got) != 0 {
		t.Fatalf("at 01:59 %d terminals got the version, want 0", len(got))
	}
	// Halfway through the jitter some terminals have it, not all.
	e.setClock(time.Date(2025, 3, 2, 2, 5, 0, 0, time.UTC))
	if got := e.released(ro.Version, ids...); len(got) == 0 || len(got) == len(ids) {
		t.Fatalf("at 02:05 with 10m jitter %d of %d terminals got the version, want some", len(got), len(ids))
	}
	e.setClock(time.Date(2025, 3, 2, 2, 10, 0, 0, time.UTC))
	if got := e.released(ro.Version, ids...); len(got) != len(ids) {
		t.Fatalf("at 02:10 %d of %d terminals got the version, want all", len(got), len(ids))
	}
	if got := e.next(w); got.Version != ro.Version || *got.Settings.ReceiptFooter != "new" {
		t.Fatalf("watcher got version %d, want %d with the new footer", got.Version, ro.Version)
	}
	// The window closing takes nothing back.
	e.setClock(time.Date(2025, 3, 2, 6, 0, 0, 0, time.UTC))
	if got := e.released(ro.Version, ids...); len(got) != len(ids) {
		t.Fatalf("after the window %d of %d terminals keep the version, want all", len(got), len(ids))
	}
	e.ackAll(configpush.AckApplied, ids...)
	e.waitState(ro.ID, configpush.StateCompleted)
}

func TestMaintenanceWindowAcrossMidnight(t *testing.T) {
	dir := newFakeDir()
	ids := tids("T", 5)
	dir.add("M1", "S1", ids...)
	e := newEnv(t, dir)
	win := &configpush.Window{Start: 22 * 60, End: 2 * 60}
	ro := e.publish(merchant, &configpush.Settings{ReceiptFooter: ptr("a")}, configpush.Plan{Window: win})
	e.setClock(time.Date(2025, 3, 1, 21, 59, 0, 0, time.UTC))
	if got := e.released(ro.Version, ids...); len(got) != 0 {
		t.Fatalf("at 21:59 %d terminals got the version, want 0", len(got))
	}
	e.setClock(time.Date(2025, 3, 1, 22, 0, 0, 0, time.UTC))
	if got := e.released(ro.Version, ids...); len(got) != len(ids) {
		t.Fatalf("at 22:00 %d of %d terminals got the version, want all", len(got), len(ids))
	}
	// Published after midnight, still inside the window: at once.
	e.setClock(time.Date(2025, 3, 2, 1, 30, 0, 0, time.UTC))
	ro2 := e.publish(merchant, &configpush.Settings{ReceiptFooter: ptr("b")}, configpush.Plan{Window: win})
	if got := e.released(ro2.Version, ids...); len(got) != len(ids) {
		t.Fatalf("at 01:30 %d of %d terminals got the version, want all", len(got), len(ids))
	}
	// Published at 02:00, the window just closed: the next evening.
	e.setClock(time.Date(2025, 3, 2, 2, 0, 0, 0, time.UTC))
	ro3 := e.publish(merchant, &configpush.Settings{ReceiptFooter: ptr("c")}, configpush.Plan{Window: win})
	e.restart() // the window is part of the stored plan
	e.setClock(time.Date(2025, 3, 2, 21, 0, 0, 0, time.UTC))
	if got := e.released(ro3.Version, ids...); len(got) != 0 {
		t.Fatalf("at 21:00 the next day %d terminals got the version, want 0", len(got))
	}
	e.setClock(time.Date(2025, 3, 2, 23, 0, 0, 0, time.UTC))
	if got := e.released(ro3.Version, ids...); len(got) != len(ids) {
		t.Fatalf("at 23:00 %d of %d terminals got the version, want all", len(got), len(ids))
	}
}

func TestMaintenanceWindowInEachStoresTimeZone(t *testing.T) {
	dir := newFakeDir()
	ny, tokyo := tids("N", 3), tids("J", 3)
	dir.add("M1", "NY", ny...)
	dir.add("M1", "TK", tokyo...)
	dir.setZone("M1", "NY", "America/New_York") // UTC-5 in March
	dir.setZone("M1", "TK", "Asia/Tokyo")       // UTC+9
	e := newEnv(t, dir)
	// 12:00 UTC is 07:00 in New York and 21:00 in Tokyo.
	ro := e.publish(merchant, &configpush.Settings{ReceiptFooter: ptr("new")}, configpush.Plan{
		Window: &configpush.Window{Start: 2 * 60, End: 5 * 60},
	})
	both := slices.Concat(ny, tokyo)
	if got := e.released(ro.Version, both...); len(got) != 0 {
		t.Fatalf("outside both windows %d terminals got the version, want 0", len(got))
	}
	// 17:00 UTC is 02:00 in Tokyo, 12:00 in New York.
	e.setClock(time.Date(2025, 3, 1, 17, 0, 0, 0, time.UTC))
	if got := e.released(ro.Version, both...); !slices.Equal(got, tokyo) {
		t.Fatalf("at 02:00 Tokyo time got %v, want the Tokyo terminals %v", got, tokyo)
	}
	// 07:00 UTC the next day is 02:00 in New York.
	e.setClock(time.Date(2025, 3, 2, 7, 0, 0, 0, time.UTC))
	if got := e.released(ro.Version, both...); len(got) != len(both) {
		t.Fatalf("at 02:00 New York time %d of %d terminals got the version, want all", len(got), len(both))
	}
}

func TestMaintenanceWindowValidation(t *testing.T) {
	dir := newFakeDir()
	dir.add("M1", "S1", tids("T", 1)...)
	e := newEnv(t, dir)
	for _, tc := range []struct {
		name string
		w    configpush.Window
	}{
		{"empty", configpush.Window{Start: 60, End: 60}},
		{"end past midnight", configpush.Window{Start: 60, End: 24 * 60}},
		{"negative start", configpush.Window{Start: -1, End: 60}},
		{"jitter as long as the window", configpush.Window{Start: 60, End: 120, Jitter: time.Hour}},
		{"negative jitter", configpush.Window{Start: 60, End: 120, Jitter: -time.Second}},
	} {
		_, err := e.eng.Publish(t.Context(), configpush.PublishRequest{Scope: merchant,
			Settings: &configpush.Settings{ReceiptHeader: ptr("x")}, Plan: configpush.Plan{Window: &tc.w}}, admin)
		if violationFields(err) == nil {
			t.Errorf("%s: window %+v accepted: %v", tc.name, tc.w, err)
		}
	}
}

func TestPaymentGateCountsOnlyReleasedTerminals(t *testing.T) {
	e, sig, ids := gateEnv(t)
	ro := e.publish(merchant, &configpush.Settings{ReceiptFooter: ptr("new")}, configpush.Plan{
		StagePercents: []uint32{20, 100}, AutoAdvance: true,
		Gate:   &configpush.PaymentGate{SoakTime: time.Hour, MinPayments: 10},
		Window: &configpush.Window{Start: 2 * 60, End: 5 * 60},
	})
	got := e.waitRollout(ro.ID, func(r configpush.Rollout) bool { return r.Gate != nil })
	if got.Gate.TreatmentTerminals != 0 {
		t.Fatalf("before the window the gate's treatment has %d terminals, want 0", got.Gate.TreatmentTerminals)
	}
	// Every terminal declines on the old layer before the window: that is
	// no evidence against the new one.
	for _, tid := range ids {
		sig.pay(tid, 5, false, time.Millisecond)
	}
	e.setClock(time.Date(2025, 3, 2, 2, 0, 0, 0, time.UTC))
	got = e.waitRollout(ro.ID, func(r configpush.Rollout) bool { return r.Gate != nil && r.Gate.TreatmentTerminals > 0 })
	if got.State != configpush.StateRunning || got.Gate.Treatment.Payments != 0 {
		t.Fatalf("after the window opened: %s, treatment %d payments; want RUNNING with none counted yet (gate %+v)",
			got.State, got.Gate.Treatment.Payments, got.Gate)
	}
}
