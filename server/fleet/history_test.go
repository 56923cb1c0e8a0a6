package fleet_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/posfleet/posfleet/internal/testclock"
	"github.com/posfleet/posfleet/server/fleet"
)

// batteries returns the battery levels of h, newest first, as a string.
func batteries(h []fleet.StatusSample) string {
	out := make([]uint32, len(h))
	for i, s := range h {
		out[i] = s.Status.BatteryPercent
	}
	return fmt.Sprint(out)
}

func battery(p uint32) fleet.Status {
	return fleet.Status{HasBattery: true, BatteryPercent: p, Paper: 1, Network: 2}
}

func TestStatusHistorySampling(t *testing.T) {
	type beat struct {
		after time.Duration // since the previous heartbeat
		st    fleet.Status
	}
	paperOut := battery(80)
	paperOut.Paper = 3
	charging := battery(80)
	charging.Charging = true
	signal := battery(80)
	signal.HasSignal, signal.SignalDBm = true, -70
	weaker := signal
	weaker.SignalDBm = -85
	tests := []struct {
		name  string
		beats []beat
		want  string // battery levels of the history, newest first
		n     int
	}{
		{"first heartbeat is sampled", []beat{{0, battery(80)}}, "[80]", 1},
		{"small drain waits for the interval", []beat{{0, battery(80)}, {time.Minute, battery(79)}, {time.Minute, battery(75)}}, "[80]", 1},
		{"interval passed", []beat{{0, battery(80)}, {14 * time.Minute, battery(79)}, {time.Minute, battery(78)}, {time.Minute, battery(78)}}, "[78 80]", 2},
		{"battery step", []beat{{0, battery(80)}, {time.Minute, battery(70)}, {time.Minute, battery(69)}}, "[70 80]", 2},
		{"paper change", []beat{{0, battery(80)}, {time.Minute, paperOut}}, "[80 80]", 2},
		{"charging change", []beat{{0, battery(80)}, {time.Minute, charging}}, "[80 80]", 2},
		{"signal appears then moves", []beat{{0, battery(80)}, {time.Minute, signal}, {time.Minute, weaker}}, "[80 80 80]", 3},
		{"unchanged status", []beat{{0, battery(80)}, {time.Minute, battery(80)}, {time.Minute, battery(80)}}, "[80]", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.merchant("MID1", "s1")
			id := e.registered("SN1", "MID1", "s1").Terminal.ID
			for _, b := range tc.beats {
				e.clock.Advance(b.after)
				if _, err := e.f.Heartbeat(id, b.st, nil); err != nil {
					t.Fatal(err)
				}
			}
			h, err := e.f.StatusHistory(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if got := batteries(h); len(h) != tc.n || got != tc.want {
				t.Errorf("got %d samples %s, want %d %s", len(h), got, tc.n, tc.want)
			}
			for i := 1; i < len(h); i++ {
				if !h[i-1].Time.After(h[i].Time) || h[i-1].Seq <= h[i].Seq {
					t.Errorf("sample %d (%v, seq %d) is not older than %d (%v, seq %d)", i, h[i].Time, h[i].Seq, i-1, h[i-1].Time, h[i-1].Seq)
				}
			}
		})
	}
}

// The history keeps at most Options.StatusHistory samples, in storage and
// pending in memory, and survives a restart; samples continue after it.
func TestStatusHistoryCapAndRestart(t *testing.T) {
	e, id := historyEnv(t, 4)
	opts := e.opts
	beat := func(p uint32) {
		t.Helper()
		e.clock.Advance(opts.StatusSampleInterval)
		if _, err := e.f.Heartbeat(id, battery(p), nil); err != nil {
			t.Fatal(err)
		}
	}
	history := func() string {
		t.Helper()
		h, err := e.f.StatusHistory(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		return batteries(h)
	}
	// Six samples wait in memory before any flush: the oldest two give way.
	for p := uint32(10); p <= 60; p += 10 {
		beat(p)
	}
	if got, want := history(), "[60 50 40 30]"; got != want {
		t.Errorf("pending history: got %s, want %s", got, want)
	}
	if err := e.f.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	beat(70)
	if got, want := history(), "[70 60 50 40]"; got != want {
		t.Errorf("stored and pending history: got %s, want %s", got, want)
	}
	e = e.reopen()
	if got, want := history(), "[70 60 50 40]"; got != want {
		t.Errorf("history after restart: got %s, want %s", got, want)
	}
	beat(80)
	beat(90)
	if err := e.f.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, want := history(), "[90 80 70 60]"; got != want {
		t.Errorf("history continued after restart: got %s, want %s", got, want)
	}
	// A smaller cap after a restart shows only the newest samples.
	e.opts.StatusHistory = 2
	e = e.reopen()
	if got, want := history(), "[90 80]"; got != want {
		t.Errorf("history under a smaller cap: got %s, want %s", got, want)
	}
	if _, err := e.f.StatusHistory(t.Context(), "NOSUCH01"); err != fleet.ErrTerminalNotFound {
		t.Errorf("unknown terminal: got %v, want ErrTerminalNotFound", err)
	}
}

// A sample is never missing from the history while a flush moves it from
// memory to storage.
func TestStatusHistoryDuringFlushes(t *testing.T) {
	e, id := historyEnv(t, 8)
	opts := e.opts
	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := e.f.Flush(t.Context()); err != nil {
				done <- err
				return
			}
		}
	}()
	for n := 1; n <= 2000; n++ {
		// Alternating paper states make every heartbeat a sample.
		st := battery(50)
		st.Paper = fleet.PaperStatus(1 + n%2)
		if _, err := e.f.Heartbeat(id, st, nil); err != nil {
			t.Fatal(err)
		}
		h, err := e.f.StatusHistory(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) == 0 {
			t.Fatalf("after heartbeat %d: no history", n)
		}
		if want := min(n, opts.StatusHistory); len(h) != want || h[0].Seq != uint64(n) || h[len(h)-1].Seq != uint64(n-want+1) {
			t.Fatalf("after heartbeat %d: got %d samples (seq %d..%d), want %d (seq %d..%d)", n, len(h), h[len(h)-1].Seq, h[0].Seq, want, n-want+1, n)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// historyEnv opens a fleet keeping n samples per terminal, with one
// registered terminal, whose ID it returns.
func historyEnv(t *testing.T, n int) (*env, string) {
	t.Helper()
	opts := fleet.DefaultOptions()
	opts.StatusHistory = n
	e := openEnv(t, t.TempDir(), testclock.New(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)), opts)
	e.merchant("MID1", "s1")
	return e, e.registered("SN1", "MID1", "s1").Terminal.ID
}
