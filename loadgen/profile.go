package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Pacer gives the intended arrival rate r(t), in arrivals per second, at
// offset t from the start of a run. Profile is the implementation used by the
// generator; tests and callers may supply their own shapes.
type Pacer interface {
	// Rate returns r(t) in arrivals per second; zero outside the run.
	Rate(t time.Duration) float64
	// Duration is the length of the run.
	Duration() time.Duration
}

// Stage is one segment of a rate profile: for Duration the rate moves
// linearly from From to To arrivals per second (From == To for a constant
// rate).
type Stage struct {
	// Name labels the stage in reports ("peak", "spike", …).
	Name string
	// Duration is how long the stage lasts; positive.
	Duration time.Duration
	// From is the rate at the start of the stage, arrivals per second.
	From float64
	// To is the rate at the end of the stage, arrivals per second.
	To float64
	// Warmup marks a stage whose measurements are left out of the results.
	Warmup bool
}

// Expected returns the expected number of arrivals in the stage, the
// integral of its rate.
func (s Stage) Expected() float64 {
	return (s.From + s.To) / 2 * s.Duration.Seconds()
}

// rateAt returns the stage's rate at offset t into the stage.
func (s Stage) rateAt(t time.Duration) float64 {
	if s.Duration <= 0 {
		return s.From
	}
	f := t.Seconds() / s.Duration.Seconds()
	return s.From + (s.To-s.From)*f
}

// massFrom returns the integral of the stage's rate from offset t (seconds)
// to its end.
func (s Stage) massFrom(t float64) float64 {
	d := s.Duration.Seconds()
	if t >= d {
		return 0
	}
	b := (s.To - s.From) / d
	return s.From*(d-t) + b*(d*d-t*t)/2
}

// Event kinds a profile can schedule.
const (
	// EventRegisterAll makes every simulated terminal register at once (the
	// registration storm). A fleet run with this event does not register
	// its terminals during setup.
	EventRegisterAll = "register-all"
	// EventPublishConfig publishes a new config to the whole fleet and
	// measures how long it takes to reach every watching terminal.
	EventPublishConfig = "publish-config"
)

// Event is an action taken once at an offset from the start of the profile.
type Event struct {
	// At is the offset from the start of the profile (warm-up included).
	At time.Duration
	// Action is one of the Event* constants.
	Action string
}

// Profile is a rate profile: stages played one after the other, and events.
// It implements Pacer.
type Profile struct {
	// Name identifies the profile in reports.
	Name string
	// Stages are played in order.
	Stages []Stage
	// Events happen once each at their offset.
	Events []Event
}

// Duration returns the total length of the stages.
func (p Profile) Duration() time.Duration {
	var d time.Duration
	for _, s := range p.Stages {
		d += s.Duration
	}
	return d
}

// StageAt returns the index of the stage playing at offset t and the offset
// into that stage. It returns -1 before the start and len(Stages) at or after
// the end.
func (p Profile) StageAt(t time.Duration) (int, time.Duration) {
	if t < 0 {
		return -1, t
	}
	for i, s := range p.Stages {
		if t < s.Duration {
			return i, t
		}
		t -= s.Duration
	}
	return len(p.Stages), t
}

// StageStart returns the offset at which stage i begins.
func (p Profile) StageStart(i int) time.Duration {
	var d time.Duration
	for j := 0; j < i && j < len(p.Stages); j++ {
		d += p.Stages[j].Duration
	}
	return d
}

// Rate returns r(t).
func (p Profile) Rate(t time.Duration) float64 {
	i, off := p.StageAt(t)
	if i < 0 || i >= len(p.Stages) {
		return 0
	}
	return p.Stages[i].rateAt(off)
}

// Expected returns the expected number of arrivals between offsets t0 and
// t1, the integral of r over [t0, t1).
func (p Profile) Expected(t0, t1 time.Duration) float64 {
	return p.cumulative(t1) - p.cumulative(t0)
}

// cumulative returns the integral of r from 0 to t.
func (p Profile) cumulative(t time.Duration) float64 {
	var sum float64
	for _, s := range p.Stages {
		if t <= 0 {
			break
		}
		if t >= s.Duration {
			sum += s.Expected()
			t -= s.Duration
			continue
		}
		sum += s.massFrom(0) - s.massFrom(t.Seconds())
		break
	}
	return sum
}

// HasEvent reports whether the profile schedules an event with action.
func (p Profile) HasEvent(action string) bool {
	for _, e := range p.Events {
		if e.Action == action {
			return true
		}
	}
	return false
}

// Validate reports the first problem with the profile.
func (p Profile) Validate() error {
	if len(p.Stages) == 0 {
		return errors.New("profile: no stages")
	}
	var sum time.Duration
	var expected float64
	for i, s := range p.Stages {
		switch {
		case s.Duration <= 0:
			return fmt.Errorf("profile: stage %d (%s): duration must be positive", i+1, s.Name)
		case s.Duration > math.MaxInt64-sum:
			return fmt.Errorf("profile: stage %d (%s): the stages last longer than %v", i+1, s.Name, time.Duration(math.MaxInt64))
		case s.From < 0 || s.To < 0 || math.IsNaN(s.From) || math.IsNaN(s.To) || math.IsInf(s.From, 0) || math.IsInf(s.To, 0):
			return fmt.Errorf("profile: stage %d (%s): rates must be finite and not negative", i+1, s.Name)
		}
		sum += s.Duration
		if expected += s.Expected(); math.IsInf(expected, 0) {
			return fmt.Errorf("profile: stage %d (%s): rates too high to count the arrivals", i+1, s.Name)
		}
	}
	total := p.Duration()
	for _, e := range p.Events {
		switch e.Action {
		case EventRegisterAll, EventPublishConfig:
		default:
			return fmt.Errorf("profile: unknown event action %q (want %s or %s)", e.Action, EventRegisterAll, EventPublishConfig)
		}
		if e.At < 0 || e.At >= total {
			return fmt.Errorf("profile: event %s at %v is outside the profile (0 to %v)", e.Action, e.At, total)
		}
	}
	return nil
}

// Built-in profile names.
const (
	ProfileSteady            = "steady"
	ProfilePeakHour          = "peak-hour"
	ProfileHolidaySpike      = "holiday-spike"
	ProfileRegistrationStorm = "registration-storm"
	ProfileConfigRollout     = "config-rollout"
)

// BuiltinProfiles lists the names accepted by Builtin.
func BuiltinProfiles() []string {
	return []string{ProfileSteady, ProfilePeakHour, ProfileHolidaySpike, ProfileRegistrationStorm, ProfileConfigRollout}
}

// Holiday-spike shape: baseline, a sudden step to SpikeFactor× for a short
// window, then a decay back to baseline.
const (
	// HolidaySpikeFactor is the spike's multiple of the baseline rate
	// (Singles' Day's first minute ran up to 10× the minute before; card
	// present retail sees softer spikes).
	HolidaySpikeFactor = 8.0
)

// Builtin returns the named built-in profile for a base rate (arrivals per
// second), a measured duration, and a warm-up prepended at the profile's
// opening rate (zero for none; registration-storm takes no warm-up because
// its terminals are not registered before the storm).
//
//   - steady: rate for duration.
//   - peak-hour: a compressed trading day whose mean is rate and whose lunch
//     peak (a tenth of the run) is about 2.75× the mean.
//   - holiday-spike: rate, then a sudden 8× burst for a tenth of the run
//     (at least one second), then a decay from 2× back to rate.
//   - registration-storm: every terminal registers at once at the start; no
//     payments for the first half; rate for the second half.
//   - config-rollout: steady rate; a config is published to the whole fleet
//     at 30% of the measured duration.
func Builtin(name string, rate float64, duration, warmup time.Duration) (Profile, error) {
	if rate <= 0 || math.IsInf(rate, 0) || math.IsNaN(rate) {
		return Profile{}, fmt.Errorf("profile %s: rate must be positive, got %v", name, rate)
	}
	if duration <= 0 {
		return Profile{}, fmt.Errorf("profile %s: duration must be positive, got %v", name, duration)
	}
	if warmup < 0 {
		return Profile{}, fmt.Errorf("profile %s: warm-up must not be negative, got %v", name, warmup)
	}
	p := Profile{Name: name}
	switch name {
	case ProfileSteady:
		p.Stages = []Stage{{Name: "steady", Duration: duration, From: rate, To: rate}}
	case ProfilePeakHour:
		// The diurnal shape as (fraction of the run, relative rate at
		// start, at end), normalised so that the mean rate is the
		// requested rate; the lunch peak then runs at about 2.75× the
		// mean, matching the 2.5–3× busiest-hour-to-average-hour ratio
		// seen in card-present retail.
		peakHourShape := []struct {
			name     string
			frac     float64
			from, to float64
		}{
			{"opening", 0.2, 0.2, 0.5},
			{"morning", 0.2, 0.5, 0.9},
			{"lunch-ramp", 0.1, 0.9, 2.8},
			{"peak", 0.1, 2.8, 2.8},
			{"lunch-fall", 0.1, 2.8, 1.0},
			{"afternoon", 0.3, 0.8, 0.2},
		}
		var mean float64
		for _, s := range peakHourShape {
			mean += s.frac * (s.from + s.to) / 2
		}
		for _, s := range peakHourShape {
			p.Stages = append(p.Stages, Stage{
				Name:     s.name,
				Duration: time.Duration(float64(duration) * s.frac),
				From:     rate * s.from / mean,
				To:       rate * s.to / mean,
			})
		}
	case ProfileHolidaySpike:
		spike := max(duration/10, time.Second)
		if spike >= duration {
			return Profile{}, fmt.Errorf("profile %s: duration %v too short for a spike (want more than 1s)", name, duration)
		}
		before := (duration - spike) * 2 / 5
		after := duration - spike - before
		p.Stages = []Stage{
			{Name: "baseline", Duration: before, From: rate, To: rate},
			{Name: "spike", Duration: spike, From: rate * HolidaySpikeFactor, To: rate * HolidaySpikeFactor},
			{Name: "decay", Duration: after, From: 2 * rate, To: rate},
		}
	case ProfileRegistrationStorm:
		half := duration / 2
		p.Stages = []Stage{
			{Name: "storm", Duration: half, From: 0, To: 0},
			{Name: "after-storm", Duration: duration - half, From: rate, To: rate},
		}
		p.Events = []Event{{At: 0, Action: EventRegisterAll}}
		return p, p.Validate()
	case ProfileConfigRollout:
		p.Stages = []Stage{{Name: "rollout", Duration: duration, From: rate, To: rate}}
		p.Events = []Event{{At: duration * 3 / 10, Action: EventPublishConfig}}
	default:
		return Profile{}, fmt.Errorf("unknown profile %q (built-in: %s; or a .json/.yaml file)", name, strings.Join(BuiltinProfiles(), ", "))
	}
	p = p.WithWarmup(warmup)
	return p, p.Validate()
}

// WithWarmup returns p with a warm-up stage of length d prepended at the
// rate p opens with, events shifted by d. A zero d returns p unchanged.
func (p Profile) WithWarmup(d time.Duration) Profile {
	if d <= 0 || len(p.Stages) == 0 {
		return p
	}
	r := p.Stages[0].From
	if r == 0 {
		r = p.Stages[0].To
	}
	out := Profile{Name: p.Name}
	out.Stages = append([]Stage{{Name: "warmup", Duration: d, From: r, To: r, Warmup: true}}, p.Stages...)
	for _, e := range p.Events {
		e.At += d
		out.Events = append(out.Events, e)
	}
	return out
}

// profileFile is the on-disk form of a custom profile. Rates are numbers
// (arrivals per second) or strings with an "x" suffix, a multiple of the
// base rate ("2.5x").
type profileFile struct {
	Name   string      `json:"name"`
	Stages []stageFile `json:"stages"`
	Events []eventFile `json:"events"`
}

type stageFile struct {
	Name     string          `json:"name"`
	Duration string          `json:"duration"`
	Rate     json.RawMessage `json:"rate"`
	From     json.RawMessage `json:"from"`
	To       json.RawMessage `json:"to"`
	Warmup   bool            `json:"warmup"`
}

type eventFile struct {
	At     string `json:"at"`
	Action string `json:"action"`
}

// checkJSONKeys walks a JSON document and rejects an object that gives a key
// twice. encoding/json would keep the last value silently, and it matches
// field names regardless of case, so "rate" and "Rate" count as the same key.
func checkJSONKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]string{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k, _ := kt.(string)
				fold := strings.ToLower(k)
				if prev, dup := seen[fold]; dup {
					if prev == k {
						return duplicateKeyError(fmt.Sprintf("duplicate key %q", k))
					}
					return duplicateKeyError(fmt.Sprintf("duplicate key %q (also given as %q; keys match regardless of case)", k, prev))
				}
				seen[fold] = k
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token() // '}'
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token() // ']'
			return err
		}
		return nil
	}
	err := walk()
	var dup duplicateKeyError
	if errors.As(err, &dup) {
		return err
	}
	return nil // syntax errors are left for the decoder to report
}

type duplicateKeyError string

func (e duplicateKeyError) Error() string { return string(e) }

// LoadProfile reads a custom profile from a .json, .yaml or .yml file. See
// ParseProfile for the format.
func LoadProfile(path string, baseRate float64) (Profile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Profile{}, err
	}
	format := "json"
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		format = "yaml"
	case ".json":
	default:
		return Profile{}, fmt.Errorf("profile %s: unknown extension (want .json, .yaml or .yml)", path)
	}
	p, err := ParseProfile(b, format, baseRate)
	if err != nil {
		return Profile{}, fmt.Errorf("profile %s: %w", path, err)
	}
	if p.Name == "" {
		p.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	return p, nil
}

// ParseProfile parses a custom profile in format "json" or "yaml":
//
//	name: lunch-rush
//	stages:
//	  - {name: warmup, duration: 10s, rate: 50, warmup: true}
//	  - {name: ramp,   duration: 1m,  from: 1x, to: 3x}
//	  - {name: peak,   duration: 2m,  rate: 3x}
//	events:
//	  - {at: 90s, action: publish-config}
//
// Each stage has a duration (Go syntax) and either rate (constant) or from
// and to (linear ramp). A rate is arrivals per second, or a multiple of
// baseRate when written with an "x" suffix. Unknown fields, keys given
// twice (field names match regardless of case), a second YAML document and
// anything after the JSON object are errors.
func ParseProfile(data []byte, format string, baseRate float64) (Profile, error) {
	switch format {
	case "json":
	case "yaml":
		// yaml.v3 rejects duplicate keys itself; a second document would
		// otherwise be ignored silently.
		yd := yaml.NewDecoder(bytes.NewReader(data))
		var doc any
		if err := yd.Decode(&doc); err != nil && err != io.EOF {
			return Profile{}, fmt.Errorf("yaml: %w", err)
		}
		var extra any
		if err := yd.Decode(&extra); err != io.EOF {
			if err != nil {
				return Profile{}, fmt.Errorf("yaml: after the profile: %w", err)
			}
			return Profile{}, errors.New("yaml: more than one document (a profile file holds one; remove the \"---\" and what follows)")
		}
		var err error
		if data, err = json.Marshal(doc); err != nil {
			return Profile{}, fmt.Errorf("yaml: %w", err)
		}
	default:
		return Profile{}, fmt.Errorf("unknown profile format %q", format)
	}
	if err := checkJSONKeys(data); err != nil {
		return Profile{}, fmt.Errorf("decode: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f profileFile
	if err := dec.Decode(&f); err != nil {
		return Profile{}, fmt.Errorf("decode: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Profile{}, errors.New("decode: unexpected data after the profile (a profile file holds one JSON object)")
	}
	p := Profile{Name: f.Name}
	for i, sf := range f.Stages {
		s := Stage{Name: sf.Name, Warmup: sf.Warmup}
		if s.Name == "" {
			s.Name = fmt.Sprintf("stage-%d", i+1)
		}
		d, err := time.ParseDuration(sf.Duration)
		if err != nil {
			return Profile{}, fmt.Errorf("stage %d (%s): duration: %w", i+1, s.Name, err)
		}
		s.Duration = d
		hasRate, hasRamp := len(sf.Rate) > 0, len(sf.From) > 0 || len(sf.To) > 0
		switch {
		case hasRate && hasRamp:
			return Profile{}, fmt.Errorf("stage %d (%s): give rate or from/to, not both", i+1, s.Name)
		case hasRate:
			if s.From, err = parseRate(sf.Rate, baseRate); err != nil {
				return Profile{}, fmt.Errorf("stage %d (%s): rate: %w", i+1, s.Name, err)
			}
			s.To = s.From
		case len(sf.From) > 0 && len(sf.To) > 0:
			if s.From, err = parseRate(sf.From, baseRate); err != nil {
				return Profile{}, fmt.Errorf("stage %d (%s): from: %w", i+1, s.Name, err)
			}
			if s.To, err = parseRate(sf.To, baseRate); err != nil {
				return Profile{}, fmt.Errorf("stage %d (%s): to: %w", i+1, s.Name, err)
			}
		default:
			return Profile{}, fmt.Errorf("stage %d (%s): give rate, or both from and to", i+1, s.Name)
		}
		p.Stages = append(p.Stages, s)
	}
	for i, ef := range f.Events {
		at, err := time.ParseDuration(ef.At)
		if err != nil {
			return Profile{}, fmt.Errorf("event %d: at: %w", i+1, err)
		}
		p.Events = append(p.Events, Event{At: at, Action: ef.Action})
	}
	return p, p.Validate()
}

// parseRate reads a rate: a JSON number, or a string holding a number or a
// multiple of base ("2x").
func parseRate(raw json.RawMessage, base float64) (float64, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, err
	}
	var r float64
	switch x := v.(type) {
	case float64:
		r = x
	case string:
		s := strings.TrimSpace(x)
		mult := strings.HasSuffix(s, "x")
		f, err := strconv.ParseFloat(strings.TrimSuffix(s, "x"), 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a rate (want a number or a multiple like \"2x\")", x)
		}
		if mult {
			if base <= 0 {
				return 0, fmt.Errorf("%q is relative but no base rate was given", x)
			}
			f *= base
		}
		r = f
	default:
		return 0, fmt.Errorf("%s is not a rate", raw)
	}
	if r < 0 || math.IsInf(r, 0) || math.IsNaN(r) {
		return 0, fmt.Errorf("rate %v must be finite and not negative", r)
	}
	return r, nil
}

// ResolveProfile returns the built-in profile called nameOrFile, or loads it
// from a file when it names one (a path ending in .json, .yaml or .yml). A
// file's warm-up stages are its own; warmup is prepended only to built-ins.
func ResolveProfile(nameOrFile string, rate float64, duration, warmup time.Duration) (Profile, error) {
	switch strings.ToLower(filepath.Ext(nameOrFile)) {
	case ".json", ".yaml", ".yml":
		return LoadProfile(nameOrFile, rate)
	}
	return Builtin(nameOrFile, rate, duration, warmup)
}
