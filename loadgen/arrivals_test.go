package loadgen_test

import (
	"math"
	"testing"
	"time"

	"github.com/posfleet/posfleet/loadgen"
)

func collect(p loadgen.Profile, proc loadgen.ArrivalProcess, seed uint64) []time.Duration {
	s := loadgen.NewSchedule(p, proc, seed)
	var out []time.Duration
	for {
		at, _, ok := s.Next()
		if !ok {
			return out
		}
		out = append(out, at)
	}
}

func TestScheduleCounts(t *testing.T) {
	steady := loadgen.Profile{Stages: []loadgen.Stage{{Name: "s", Duration: 100 * time.Second, From: 50, To: 50}}}
	ramp := loadgen.Profile{Stages: []loadgen.Stage{
		{Name: "up", Duration: 60 * time.Second, From: 0, To: 200},
		{Name: "idle", Duration: 10 * time.Second, From: 0, To: 0},
		{Name: "down", Duration: 40 * time.Second, From: 100, To: 10},
	}}
	tests := []struct {
		name string
		p    loadgen.Profile
		proc loadgen.ArrivalProcess
	}{
		{"steady/uniform", steady, loadgen.Uniform},
		{"steady/poisson", steady, loadgen.Poisson},
		{"ramp/uniform", ramp, loadgen.Uniform},
		{"ramp/poisson", ramp, loadgen.Poisson},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.p.Expected(0, tt.p.Duration())
			for seed := uint64(1); seed <= 5; seed++ {
				arr := collect(tt.p, tt.proc, seed)
				got := float64(len(arr))
				// Uniform: exactly one arrival per unit of expected count.
				// Poisson: the count is Poisson(want); allow 5 sigma.
				tol := 1.0
				if tt.proc == loadgen.Poisson {
					tol = 5 * math.Sqrt(want)
				}
				if !near(got, want, tol) {
					t.Errorf("seed %d: got %v arrivals, want %.0f ± %.0f", seed, got, want, tol)
				}
				for i := 1; i < len(arr); i++ {
					if arr[i] < arr[i-1] {
						t.Fatalf("arrival %d at %v before arrival %d at %v", i, arr[i], i-1, arr[i-1])
					}
				}
				if len(arr) > 0 && (arr[0] < 0 || arr[len(arr)-1] > tt.p.Duration()) {
					t.Errorf("arrivals outside [0, %v]: first %v last %v", tt.p.Duration(), arr[0], arr[len(arr)-1])
				}
			}
		})
	}
}

func TestScheduleFollowsRamp(t *testing.T) {
	// Arrivals per window must track the integral of r over the window.
	p := loadgen.Profile{Stages: []loadgen.Stage{
		{Name: "up", Duration: 100 * time.Second, From: 0, To: 400},
		{Name: "off", Duration: 20 * time.Second, From: 0, To: 0},
		{Name: "flat", Duration: 20 * time.Second, From: 100, To: 100},
	}}
	arr := collect(p, loadgen.Poisson, 42)
	const win = 10 * time.Second
	counts := map[int]int{}
	for _, a := range arr {
		counts[int(a/win)]++
	}
	for w := 0; w < int(p.Duration()/win); w++ {
		want := p.Expected(time.Duration(w)*win, time.Duration(w+1)*win)
		got := float64(counts[w])
		if !near(got, want, 5*math.Sqrt(want)+1) {
			t.Errorf("window %d: got %v arrivals, want about %.0f", w, got, want)
		}
	}
}

func TestSchedulePoissonGaps(t *testing.T) {
	// Poisson gaps at a constant rate are exponential: mean 1/r and
	// coefficient of variation 1. Uniform gaps have CV 0.
	p := loadgen.Profile{Stages: []loadgen.Stage{{Name: "s", Duration: 200 * time.Second, From: 100, To: 100}}}
	for _, tt := range []struct {
		proc   loadgen.ArrivalProcess
		wantCV float64
	}{{loadgen.Poisson, 1}, {loadgen.Uniform, 0}} {
		arr := collect(p, tt.proc, 7)
		var sum, sq float64
		for i := 1; i < len(arr); i++ {
			g := (arr[i] - arr[i-1]).Seconds()
			sum += g
			sq += g * g
		}
		n := float64(len(arr) - 1)
		mean := sum / n
		cv := math.Sqrt(math.Max(0, sq/n-mean*mean)) / mean
		if !near(mean, 0.01, 0.0005) {
			t.Errorf("%v: mean gap got %.5fs, want 0.01s", tt.proc, mean)
		}
		if !near(cv, tt.wantCV, 0.05) {
			t.Errorf("%v: gap CV got %.3f, want %.1f", tt.proc, cv, tt.wantCV)
		}
	}
}

func TestScheduleDeterministic(t *testing.T) {
	p := loadgen.Profile{Stages: []loadgen.Stage{{Name: "s", Duration: 10 * time.Second, From: 30, To: 60}}}
	a, b := collect(p, loadgen.Poisson, 99), collect(p, loadgen.Poisson, 99)
	if len(a) != len(b) {
		t.Fatalf("same seed: got %d and %d arrivals", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed: arrival %d got %v and %v", i, a[i], b[i])
		}
	}
}

func TestParseArrivalProcess(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    loadgen.ArrivalProcess
		wantErr bool
	}{{"poisson", loadgen.Poisson, false}, {"uniform", loadgen.Uniform, false}, {"", loadgen.Poisson, false}, {"burst", 0, true}} {
		got, err := loadgen.ParseArrivalProcess(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseArrivalProcess(%q): got %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
