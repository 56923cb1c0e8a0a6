package loadgen_test

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/loadgen"
)

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

func TestBuiltinProfiles(t *testing.T) {
	const rate = 100.0
	const dur = 10 * time.Minute
	for _, name := range loadgen.BuiltinProfiles() {
		t.Run(name, func(t *testing.T) {
			p, err := loadgen.Builtin(name, rate, dur, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			var measured time.Duration
			for _, s := range p.Stages {
				if !s.Warmup {
					measured += s.Duration
				}
			}
			if measured != dur {
				t.Errorf("measured duration: got %v, want %v", measured, dur)
			}
			wantWarm := name != loadgen.ProfileRegistrationStorm
			if got := p.Stages[0].Warmup; got != wantWarm {
				t.Errorf("first stage warm-up: got %v, want %v", got, wantWarm)
			}
		})
	}
}

func TestPeakHourShape(t *testing.T) {
	const rate = 100.0
	p, err := loadgen.Builtin(loadgen.ProfilePeakHour, rate, time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	mean := p.Expected(0, p.Duration()) / p.Duration().Seconds()
	if !near(mean, rate, 0.01) {
		t.Errorf("mean rate: got %.3f, want %.1f", mean, rate)
	}
	var peak float64
	for _, s := range p.Stages {
		peak = math.Max(peak, math.Max(s.From, s.To))
	}
	if ratio := peak / mean; ratio < 2.5 || ratio > 3 {
		t.Errorf("peak/mean: got %.2f, want within [2.5, 3]", ratio)
	}
	// The busiest tenth of the run (the peak stage) carries 2.5–3× the
	// average tenth.
	start := p.StageStart(3)
	busiest := p.Expected(start, start+p.Stages[3].Duration) / p.Stages[3].Duration.Seconds()
	if ratio := busiest / mean; ratio < 2.5 || ratio > 3 {
		t.Errorf("busiest stage/mean: got %.2f, want within [2.5, 3]", ratio)
	}
}

func TestHolidaySpike(t *testing.T) {
	p, err := loadgen.Builtin(loadgen.ProfileHolidaySpike, 50, 100*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	var spike *loadgen.Stage
	for i := range p.Stages {
		if p.Stages[i].Name == "spike" {
			spike = &p.Stages[i]
		}
	}
	if spike == nil {
		t.Fatal("no spike stage")
	}
	if got, want := spike.From, 50*loadgen.HolidaySpikeFactor; got != want {
		t.Errorf("spike rate: got %v, want %v", got, want)
	}
	if got, want := spike.Duration, 10*time.Second; got != want {
		t.Errorf("spike duration: got %v, want %v", got, want)
	}
	// The spike is a step, not a ramp: just before it the rate is baseline.
	at := p.StageStart(1)
	if got := p.Rate(at - time.Millisecond); got != 50 {
		t.Errorf("rate just before spike: got %v, want 50", got)
	}
	if got := p.Rate(at); got != 400 {
		t.Errorf("rate at spike: got %v, want 400", got)
	}
}

func TestProfileRateAndExpected(t *testing.T) {
	p := loadgen.Profile{Name: "ramp", Stages: []loadgen.Stage{
		{Name: "flat", Duration: 10 * time.Second, From: 10, To: 10},
		{Name: "ramp", Duration: 10 * time.Second, From: 0, To: 100},
	}}
	tests := []struct {
		at   time.Duration
		want float64
	}{
		{-time.Second, 0},
		{0, 10},
		{5 * time.Second, 10},
		{10 * time.Second, 0},
		{15 * time.Second, 50},
		{20 * time.Second, 0},
	}
	for _, tt := range tests {
		if got := p.Rate(tt.at); !near(got, tt.want, 1e-9) {
			t.Errorf("Rate(%v): got %v, want %v", tt.at, got, tt.want)
		}
	}
	if got, want := p.Expected(0, 20*time.Second), 100.0+500.0; !near(got, want, 1e-9) {
		t.Errorf("Expected(all): got %v, want %v", got, want)
	}
	if got, want := p.Expected(10*time.Second, 15*time.Second), 125.0; !near(got, want, 1e-9) {
		t.Errorf("Expected(first half of ramp): got %v, want %v", got, want)
	}
}

func TestLoadProfileGood(t *testing.T) {
	tests := []struct {
		file       string
		name       string
		stages     int
		events     int
		duration   time.Duration
		secondFrom float64
		secondTo   float64
	}{
		{"lunch.yaml", "lunch-rush", 4, 1, 3*time.Minute + 35*time.Second, 100, 300},
		{"burst.json", "burst", 3, 0, 22 * time.Second, 1000, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			p, err := loadgen.LoadProfile(filepath.Join("testdata", tt.file), 100)
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != tt.name {
				t.Errorf("name: got %q, want %q", p.Name, tt.name)
			}
			if len(p.Stages) != tt.stages || len(p.Events) != tt.events {
				t.Fatalf("got %d stages %d events, want %d and %d", len(p.Stages), len(p.Events), tt.stages, tt.events)
			}
			if got := p.Duration(); got != tt.duration {
				t.Errorf("duration: got %v, want %v", got, tt.duration)
			}
			if s := p.Stages[1]; s.From != tt.secondFrom || s.To != tt.secondTo {
				t.Errorf("stage 2 rates: got %v→%v, want %v→%v", s.From, s.To, tt.secondFrom, tt.secondTo)
			}
		})
	}
	p, err := loadgen.LoadProfile(filepath.Join("testdata", "lunch.yaml"), 100)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Stages[0].Warmup || p.Stages[1].Warmup {
		t.Errorf("warm-up flags: got %v %v, want true false", p.Stages[0].Warmup, p.Stages[1].Warmup)
	}
	if got := p.Events[0]; got.At != 90*time.Second || got.Action != loadgen.EventPublishConfig {
		t.Errorf("event: got %+v", got)
	}
	if got := p.Stages[3].To; got != 100 {
		t.Errorf("absolute rate in a ramp: got %v, want 100", got)
	}
}

func TestLoadProfileBad(t *testing.T) {
	tests := []struct {
		file    string
		wantErr string
	}{
		{"bad-unknown-field.json", "unknown field"},
		{"bad-both.yaml", "not both"},
		{"bad-duration.yaml", "duration"},
		{"bad-negative.json", "negative"},
		{"bad-event.yaml", "unknown event action"},
		{"bad-empty.json", "no stages"},
		{"bad-syntax.yaml", "yaml"},
		{"missing.json", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := loadgen.LoadProfile(filepath.Join("testdata", tt.file), 100)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseProfileRelativeNeedsBase(t *testing.T) {
	_, err := loadgen.ParseProfile([]byte(`{"stages":[{"duration":"1s","rate":"2x"}]}`), "json", 0)
	if err == nil || !strings.Contains(err.Error(), "no base rate") {
		t.Errorf("got %v, want a missing base rate error", err)
	}
}

func TestResolveProfile(t *testing.T) {
	if _, err := loadgen.ResolveProfile("nope", 10, time.Second, 0); err == nil || !strings.Contains(err.Error(), "unknown profile") {
		t.Errorf("unknown built-in: got %v", err)
	}
	p, err := loadgen.ResolveProfile(filepath.Join("testdata", "burst.json"), 10, time.Second, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if p.Stages[0].Warmup {
		t.Error("a file profile got a warm-up prepended; files carry their own")
	}
	if _, err := loadgen.Builtin(loadgen.ProfileSteady, 0, time.Second, 0); err == nil {
		t.Error("zero rate accepted")
	}
}

// TestParseProfileRejectsAmbiguousInput: a profile used to be accepted with
// data after the JSON object (ignored), with a second YAML document after
// "---" (ignored) and with a JSON key given twice (the last one won), so a
// file could run a different load from the one its reader sees first.
func TestParseProfileRejectsAmbiguousInput(t *testing.T) {
	tests := []struct {
		name, format, in, wantErr string
	}{
		{"json second object", "json", `{"stages":[{"duration":"10s","rate":20}]} {"stages":[{"duration":"1h","rate":9999}]}`, "after the profile"},
		{"json trailing junk", "json", `{"stages":[{"duration":"10s","rate":20}]} ]]]`, "after the profile"},
		{"json duplicate key", "json", `{"stages":[{"duration":"10s","rate":20,"rate":5000}]}`, `duplicate key "rate"`},
		{"json duplicate top-level key", "json", `{"stages":[{"duration":"10s","rate":20}],"stages":[{"duration":"1h","rate":1}]}`, `duplicate key "stages"`},
		{"json duplicate key by case", "json", `{"stages":[{"duration":"10s","rate":20,"Rate":5000}]}`, `duplicate key "Rate"`},
		{"yaml second document", "yaml", "stages:\n  - {duration: 10s, rate: 20}\n---\nstages:\n  - {duration: 1h, rate: 9999}\n", "more than one document"},
		{"yaml duplicate key", "yaml", "stages:\n  - {duration: 10s, rate: 20}\nstages:\n  - {duration: 1h, rate: 9999}\n", "already defined"},
		{"yaml duplicate key by case", "yaml", "stages:\n  - {duration: 10s, rate: 20, Rate: 50}\n", "duplicate key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := loadgen.ParseProfile([]byte(tt.in), tt.format, 50)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %+v, error %v; want an error containing %q", p, err, tt.wantErr)
			}
		})
	}

	// What stays accepted: trailing whitespace, a YAML document marker
	// before the one document, a comment after it.
	for _, ok := range []struct{ format, in string }{
		{"json", "{\"stages\":[{\"duration\":\"10s\",\"rate\":20}]}\n\n\t "},
		{"yaml", "# c\n---\nstages:\n  - {duration: 10s, rate: 20}\n"},
		{"yaml", "stages:\n  - {duration: 10s, rate: 20}\n...\n# end\n"},
		{"json", `{"stages":[{"duration":"10s","rate":20},{"duration":"10s","rate":20}]}`},
	} {
		if _, err := loadgen.ParseProfile([]byte(ok.in), ok.format, 50); err != nil {
			t.Errorf("%s %q: %v", ok.format, ok.in, err)
		}
	}
}
