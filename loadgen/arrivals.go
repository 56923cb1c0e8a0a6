package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// ArrivalProcess is how arrival times are drawn from a rate profile.
type ArrivalProcess int

const (
	// Poisson arrivals: independent, exponentially distributed gaps in the
	// profile's cumulative intensity (a non-homogeneous Poisson process).
	// Real checkouts arrive like this, with natural bunching.
	Poisson ArrivalProcess = iota
	// Uniform arrivals: evenly spaced in cumulative intensity, one in the
	// middle of each unit of expected count.
	Uniform
)

// String returns "poisson" or "uniform".
func (a ArrivalProcess) String() string {
	switch a {
	case Poisson:
		return "poisson"
	case Uniform:
		return "uniform"
	}
	return fmt.Sprintf("ArrivalProcess(%d)", int(a))
}

// ParseArrivalProcess parses "poisson" or "uniform".
func ParseArrivalProcess(s string) (ArrivalProcess, error) {
	switch s {
	case "poisson", "":
		return Poisson, nil
	case "uniform":
		return Uniform, nil
	}
	return 0, fmt.Errorf("unknown arrival process %q (want poisson or uniform)", s)
}

// Schedule produces the intended arrival times of a profile, in order. It
// inverts the profile's cumulative intensity Λ(t) = ∫r: each gap is a draw
// E (exponential with mean 1 for Poisson, exactly 1 for Uniform) and the
// next arrival is the t' with Λ(t') − Λ(t) = E, solved in closed form on each
// linear stage. It is deterministic for a given seed and not safe for
// concurrent use.
type Schedule struct {
	profile Profile
	process ArrivalProcess
	rng     *rand.Rand

	stage    int     // current stage index
	stageOff float64 // seconds into the current stage
	stageAt  float64 // seconds from profile start to the current stage
	started  bool    // whether an arrival has been produced
}

// NewSchedule returns a schedule of arrivals for p.
func NewSchedule(p Profile, process ArrivalProcess, seed uint64) *Schedule {
	return &Schedule{profile: p, process: process, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Next returns the offset of the next arrival from the start of the profile
// and the index of its stage, or ok == false when the profile is over.
func (s *Schedule) Next() (at time.Duration, stage int, ok bool) {
	e := 1.0
	switch {
	case s.process == Poisson:
		e = s.rng.ExpFloat64()
	case !s.started:
		// Uniform arrivals sit in the middle of each unit of expected
		// count, so a span with n expected arrivals gets exactly n.
		e = 0.5
	}
	s.started = true
	for s.stage < len(s.profile.Stages) {
		st := s.profile.Stages[s.stage]
		d := st.Duration.Seconds()
		mass := st.massFrom(s.stageOff)
		if e <= mass && mass > 0 {
			r := st.From + (st.To-st.From)/d*s.stageOff
			b := (st.To - st.From) / d
			disc := math.Max(0, r*r+2*b*e)
			var gap float64
			if den := r + math.Sqrt(disc); den > 0 {
				gap = 2 * e / den
			}
			s.stageOff = math.Min(s.stageOff+gap, d)
			t := time.Duration((s.stageAt + s.stageOff) * float64(time.Second))
			return t, s.stage, true
		}
		e -= mass
		s.stageAt += d
		s.stageOff = 0
		s.stage++
	}
	return 0, len(s.profile.Stages), false
}
