package fleet_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/internal/testclock"
	"github.com/posfleet/posfleet/server/fleet"
)

func TestConnectivityFromHeartbeats(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	reg := e.registered("SN1", "MID1", "s1")
	id := reg.Terminal.ID
	conn := func() fleet.Connectivity {
		v, err := e.f.Terminal(id)
		if err != nil {
			t.Fatal(err)
		}
		return v.Connectivity
	}
	iv := e.opts.HeartbeatInterval
	e.clock.Advance(11 * iv) // the registration's contact is long past
	if got := conn(); got != fleet.Offline {
		t.Fatalf("11 intervals after registering: %v, want OFFLINE", got)
	}
	if _, err := e.f.Heartbeat(id, fleet.Status{FirmwareVersion: "fw"}, nil); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		advance time.Duration
		want    fleet.Connectivity
	}{
		{2 * iv, fleet.Online},
		{time.Second, fleet.Stale},
		{8*iv - time.Second, fleet.Stale},
		{time.Second, fleet.Offline},
	} {
		e.clock.Advance(step.advance)
		if got := conn(); got != step.want {
			t.Errorf("%v after the heartbeat: %v, want %v", e.clock.Now().Sub(reg.Terminal.Created), got, step.want)
		}
	}
}

// A terminal that registered and paid, but never sent a heartbeat, was in
// contact: any authenticated call counts, and the contact survives a
// restart (it is flushed with the heartbeat batch).
func TestConnectivityFromAnyContact(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	p := e.provision("SN1", "MID1", "s1")
	view := func(e *env) fleet.Terminal {
		v, err := e.f.Terminal(p.Terminal.ID)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := view(e); v.Connectivity != fleet.NeverSeen || !v.LastSeen.IsZero() {
		t.Fatalf("provisioned: %v, last seen %v; want NEVER_SEEN and none", v.Connectivity, v.LastSeen)
	}
	reg, err := e.register("SN1", p.EnrollmentCode)
	if err != nil {
		t.Fatal(err)
	}
	if v := view(e); v.Connectivity != fleet.Online || !v.LastSeen.Equal(e.clock.Now().UTC()) || !v.LastHeartbeat.IsZero() {
		t.Fatalf("registered: %v, last seen %v, last heartbeat %v; want ONLINE, now, none", v.Connectivity, v.LastSeen, v.LastHeartbeat)
	}
	iv := e.opts.HeartbeatInterval
	e.clock.Advance(11 * iv)
	if v := view(e); v.Connectivity != fleet.Offline {
		t.Fatalf("11 intervals later: %v, want OFFLINE", v.Connectivity)
	}
	// A payment (or any other call) authenticates the credential.
	if _, err := e.f.Authenticate(reg.Credential); err != nil {
		t.Fatal(err)
	}
	paid := e.clock.Now().UTC()
	if v := view(e); v.Connectivity != fleet.Online || !v.LastSeen.Equal(paid) {
		t.Fatalf("after an authenticated call: %v, last seen %v; want ONLINE, %v", v.Connectivity, v.LastSeen, paid)
	}
	// A wrong credential is no contact.
	e.clock.Advance(time.Minute)
	if _, err := e.f.Authenticate(reg.Credential + "x"); err == nil {
		t.Fatal("a wrong credential authenticated")
	}
	if v := view(e); !v.LastSeen.Equal(paid) {
		t.Fatalf("after a wrong credential: last seen %v, want %v", v.LastSeen, paid)
	}
	if err := e.f.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	e2 := e.reopen()
	if v := view(e2); !v.LastSeen.Equal(paid) || !v.LastHeartbeat.IsZero() {
		t.Fatalf("after restart: last seen %v, last heartbeat %v; want %v and none", v.LastSeen, v.LastHeartbeat, paid)
	}
}

type fixedConfig struct {
	version  uint64
	interval time.Duration
}

func (c fixedConfig) DesiredConfigVersion(string) uint64     { return c.version }
func (c fixedConfig) HeartbeatInterval(string) time.Duration { return c.interval }

func TestHeartbeatUsesConfigSourceWithJitter(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	reg := e.registered("SN1", "MID1", "s1")
	res, err := e.f.Heartbeat(reg.Terminal.ID, fleet.Status{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ConfigVersion != 0 {
		t.Errorf("config version without a source = %d, want 0", res.ConfigVersion)
	}
	e.f.SetConfigSource(fixedConfig{version: 42, interval: 100 * time.Second})
	seen := map[time.Duration]bool{}
	for range 50 {
		res, err := e.f.Heartbeat(reg.Terminal.ID, fleet.Status{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.ConfigVersion != 42 {
			t.Fatalf("config version = %d, want 42", res.ConfigVersion)
		}
		if d := res.NextHeartbeat; d < 90*time.Second || d > 110*time.Second {
			t.Fatalf("next heartbeat %v outside 100s ±10%%", d)
		}
		seen[res.NextHeartbeat] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct intervals in 50 heartbeats: no jitter", len(seen))
	}
}

func TestHeartbeatStatusAndFaultsPersistWithoutPerCallWrites(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1", "s2")
	a := e.registered("SN1", "MID1", "s1").Terminal.ID
	b := e.registered("SN2", "MID1", "s2").Terminal.ID
	faults := []fleet.Fault{
		{Component: "printer", Code: "P1", Time: e.clock.Now()},
		{Component: "printer", Code: "P2", Time: e.clock.Now()},
		{Component: "card_reader", Code: "C1", Time: e.clock.Now()},
	}
	if _, err := e.f.Heartbeat(a, fleet.Status{FirmwareVersion: "fw1", AppVersion: "app1", ConfigVersion: 3, HasBattery: true, BatteryPercent: 77}, faults); err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.Heartbeat(b, fleet.Status{FirmwareVersion: "fw2", AppVersion: "app1"}, faults[2:]); err != nil {
		t.Fatal(err)
	}
	// Close flushes what is pending; the reopened fleet has it all.
	e = e.reopen()
	v, err := e.f.Terminal(a)
	if err != nil {
		t.Fatal(err)
	}
	if v.LastStatus.FirmwareVersion != "fw1" || v.LastStatus.BatteryPercent != 77 || v.LastHeartbeat.IsZero() {
		t.Errorf("status after restart = %+v at %v", v.LastStatus, v.LastHeartbeat)
	}
	if len(v.RecentFaults) != 3 || v.RecentFaults[0].Code != "C1" {
		t.Errorf("recent faults after restart = %+v, want 3, newest (C1) first", v.RecentFaults)
	}
	rep, err := e.f.Report("", "")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rep.FaultsByComponent) != "[{card_reader 2} {printer 2}]" {
		t.Errorf("faults by component = %v", rep.FaultsByComponent)
	}
	if fmt.Sprint(rep.FirmwareVersions) != "[{fw1 1} {fw2 1}]" || fmt.Sprint(rep.AppVersions) != "[{app1 2}]" {
		t.Errorf("versions = %v / %v", rep.FirmwareVersions, rep.AppVersions)
	}
	scoped, err := e.f.Report("MID1", "s2")
	if err != nil {
		t.Fatal(err)
	}
	if scoped.Total != 1 || len(scoped.Faults) != 1 || scoped.Faults[0].Component != "card_reader" || scoped.Faults[0].StoreID != "s2" {
		t.Errorf("store report = %+v", scoped)
	}
	// Faults age out of the report after the retention period.
	e.clock.Advance(e.opts.FaultRetention + time.Hour)
	e = e.reopen()
	rep, _ = e.f.Report("", "")
	if len(rep.Faults) != 0 {
		t.Errorf("faults older than the retention: %v", rep.Faults)
	}
}

// A fault past retention but not yet pruned when the server stopped was
// not counted at load, yet pruning it afterwards took one off the count of
// its store and component: a fault still in retention vanished from the
// report. Every stored fault is now counted at load and expired ones are
// pruned before the fleet opens.
func TestFaultCountsSurviveRestartWithExpiredFaultsOnDisk(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	id := e.registered("SN1", "MID1", "s1").Terminal.ID
	fault := func(code string) {
		if _, err := e.f.Heartbeat(id, fleet.Status{}, []fleet.Fault{{Component: "printer", Code: code, Time: e.clock.Now()}}); err != nil {
			t.Fatal(err)
		}
	}
	fault("OLD")
	e.clock.Advance(e.opts.FaultRetention - 24*time.Hour)
	fault("NEW")
	e.clock.Advance(24*time.Hour + time.Minute) // OLD expired, NEW not
	e = e.reopen()
	for _, when := range []string{"after reopen", "after the hourly prune"} {
		rep, err := e.f.Report("", "")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(rep.FaultsByComponent) != "[{printer 1}]" {
			t.Errorf("faults by component %s = %v, want [{printer 1}]", when, rep.FaultsByComponent)
		}
		if err := e.f.PruneFaults(e.clock.Now().Add(-e.opts.FaultRetention)); err != nil {
			t.Fatal(err)
		}
	}
}

// Fault counts are keyed by a component name the terminal chooses; a count
// that reaches zero is deleted, so the map does not keep every name ever
// reported.
func TestPrunedFaultCountsAreForgotten(t *testing.T) {
	opts := fleet.DefaultOptions()
	opts.FaultComponentsPerTerminal, opts.FaultBurst = 40*32, 40*32 // lift the caps
	e := openEnv(t, t.TempDir(), testclock.New(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)), opts)
	e.merchant("MID1", "s1")
	id := e.registered("SN1", "MID1", "s1").Terminal.ID
	for i := range 40 {
		faults := make([]fleet.Fault, 32)
		for j := range faults {
			faults[j] = fleet.Fault{Component: fmt.Sprintf("c%d-%d", i, j), Time: e.clock.Now()}
		}
		if _, err := e.f.Heartbeat(id, fleet.Status{}, faults); err != nil {
			t.Fatal(err)
		}
	}
	e = e.reopen() // writes the faults out
	if n := e.f.FaultCountKeys(); n != 40*32 {
		t.Fatalf("fault counts before pruning: %d keys, want %d", n, 40*32)
	}
	e.clock.Advance(e.opts.FaultRetention + time.Hour)
	if err := e.f.PruneFaults(e.clock.Now().Add(-e.opts.FaultRetention)); err != nil {
		t.Fatal(err)
	}
	if n := e.f.FaultCountKeys(); n != 0 {
		t.Errorf("fault counts after every fault was pruned: %d keys, want 0", n)
	}
}

// One terminal sending 3,000 heartbeats of 32 distinct fault components
// each used to add 96,000 stored faults and report rows, until
// GetFleetReport exceeded the 4 MiB message limit, for good (faults are
// kept 30 days). Its components beyond the per-terminal cap are filed under
// "(other)", its stored faults stop at its budget, and another terminal's
// faults are still counted.
func TestFaultFloodIsBounded(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	flood := e.registered("SN1", "MID1", "s1").Terminal.ID
	quiet := e.registered("SN2", "MID1", "s1").Terminal.ID
	const heartbeats, perBeat = 3000, 32
	for i := range heartbeats {
		faults := make([]fleet.Fault, perBeat)
		for j := range faults {
			faults[j] = fleet.Fault{Component: fmt.Sprintf("c%d-%d", i, j), Message: strings.Repeat("m", 200), Time: e.clock.Now()}
		}
		if _, err := e.f.Heartbeat(flood, fleet.Status{}, faults); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.f.Heartbeat(quiet, fleet.Status{}, []fleet.Fault{{Component: "printer", Code: "PAPER_OUT", Time: e.clock.Now()}}); err != nil {
		t.Fatal(err)
	}
	e = e.reopen() // writes the faults out and counts them back
	if n := e.f.FaultCountKeys(); n > e.opts.FaultComponentsPerTerminal+2 {
		t.Errorf("fault count keys = %d, want at most %d (the flooding terminal's cap, (other), printer)", n, e.opts.FaultComponentsPerTerminal+2)
	}
	rep, err := e.f.Report("", "")
	if err != nil {
		t.Fatal(err)
	}
	var stored uint64
	printer := false
	for _, c := range rep.FaultsByComponent {
		stored += c.Count
		printer = printer || c.Key == "printer"
	}
	t.Logf("fault flood: %d heartbeats × %d distinct components: %d faults stored, %d count keys", heartbeats, perBeat, stored, e.f.FaultCountKeys())
	if max := uint64(e.opts.FaultBurst + 1); stored > max {
		t.Errorf("stored faults = %d of %d sent, want at most the budget %d", stored, heartbeats*perBeat, max)
	}
	if !printer {
		t.Errorf("the quiet terminal's fault is missing from %v", rep.FaultsByComponent)
	}
	// Before the restart the counter held the dropped faults; after it, it
	// starts again, so check it on a fresh flood.
	if _, err := e.f.Heartbeat(flood, fleet.Status{}, make([]fleet.Fault, perBeat)); err != nil {
		t.Fatal(err)
	}
	e.f.Heartbeat(flood, fleet.Status{}, make([]fleet.Fault, e.opts.FaultBurst))
	if rep, _ := e.f.Report("", ""); rep.FaultsDropped == 0 {
		t.Error("faults over the budget not counted as dropped")
	}
}
