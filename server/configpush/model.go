package configpush

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
	"time"
)

// Scope is where a settings layer applies. All fields empty: global.
// MerchantID only: that merchant. MerchantID and StoreID: that store.
// TerminalID only: that terminal.
type Scope struct {
	MerchantID string `json:"m,omitempty"`
	StoreID    string `json:"s,omitempty"`
	TerminalID string `json:"t,omitempty"`
}

// Level is the width of a scope.
type Level int

// Scope levels, widest first.
const (
	LevelGlobal Level = iota
	LevelMerchant
	LevelStore
	LevelTerminal
)

// Level returns the scope's width.
func (s Scope) Level() Level {
	switch {
	case s.TerminalID != "":
		return LevelTerminal
	case s.StoreID != "":
		return LevelStore
	case s.MerchantID != "":
		return LevelMerchant
	}
	return LevelGlobal
}

// String names the scope for logs and tables: "global", "merchant M",
// "store M/S" or "terminal T".
func (s Scope) String() string {
	switch s.Level() {
	case LevelTerminal:
		return "terminal " + s.TerminalID
	case LevelStore:
		return "store " + s.MerchantID + "/" + s.StoreID
	case LevelMerchant:
		return "merchant " + s.MerchantID
	}
	return "global"
}

// key is the scope's map key.
func (s Scope) key() string {
	switch s.Level() {
	case LevelTerminal:
		return "t/" + s.TerminalID
	case LevelStore:
		return "s/" + s.MerchantID + "/" + s.StoreID
	case LevelMerchant:
		return "m/" + s.MerchantID
	}
	return "g"
}

// contains reports whether terminal t is in the scope.
func (s Scope) contains(t TerminalRef) bool {
	switch s.Level() {
	case LevelTerminal:
		return s.TerminalID == t.TerminalID
	case LevelStore:
		return s.MerchantID == t.MerchantID && s.StoreID == t.StoreID
	case LevelMerchant:
		return s.MerchantID == t.MerchantID
	}
	return true
}

// chainKeys returns the scope keys of a terminal's chain, widest first.
func chainKeys(t TerminalRef) [4]string {
	return [4]string{"g", "m/" + t.MerchantID, "s/" + t.MerchantID + "/" + t.StoreID, "t/" + t.TerminalID}
}

// validate checks the shape of the scope (formats are the transport's job).
func (s Scope) validate(v *violations) {
	switch {
	case s.TerminalID != "" && (s.MerchantID != "" || s.StoreID != ""):
		v.add("scope.terminal_id", "must be given alone, without merchant_id or store_id")
	case s.StoreID != "" && s.MerchantID == "":
		v.add("scope.merchant_id", "is required with store_id")
	}
}

// Plan is how a config version is rolled out.
type Plan struct {
	// StagePercents is the cumulative share of targeted terminals per
	// stage, strictly increasing and ending at 100.
	StagePercents []uint32 `json:"sp"`
	// MaxFailureRatio halts the rollout when rejected / acknowledged in the
	// current stage exceeds it.
	MaxFailureRatio float64 `json:"mfr"`
	// AutoAdvance moves to the next stage when the current one is healthy.
	// Without it, a healthy stage pauses the rollout until ResumeRollout.
	AutoAdvance bool `json:"aa,omitempty"`
	// MinStageDuration is the shortest time a stage runs before it may
	// advance or complete.
	MinStageDuration time.Duration `json:"msd,omitempty"`
	// Gate, when set, holds each stage until its terminals' payments show
	// the change does no harm, and halts (or rolls back) the rollout when
	// they do not. It needs the engine's PaymentSignals.
	Gate *PaymentGate `json:"g,omitempty"`
	// Freezes are periods during which the rollout does not advance or
	// complete on its own (AdvanceRollout by an operator still does).
	Freezes []Freeze `json:"fz,omitempty"`
	// Window, when set, holds each included terminal's new version until
	// its store's local time is inside the window (plus the terminal's
	// jitter); nil means at once.
	Window *Window `json:"w,omitempty"`
}

// Window is a daily maintenance window in each store's local time (the
// store's time zone, UTC when it has none). End before Start crosses
// midnight: 22:00-02:00.
type Window struct {
	// Start and End are minutes after local midnight, [0, 1440).
	Start int `json:"s"`
	End   int `json:"e"`
	// Jitter spreads the terminals over [0, Jitter) after the window opens,
	// by a hash of the terminal ID, so that they do not all fetch at once.
	// It must be shorter than the window.
	Jitter time.Duration `json:"j,omitempty"`
}

// ParseTimeOfDay parses a 24-hour local time of day "HH:MM" ("02:00",
// "23:59") into minutes after midnight.
func ParseTimeOfDay(s string) (int, bool) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, false
	}
	return t.Hour()*60 + t.Minute(), true
}

// FormatTimeOfDay formats minutes after midnight as "HH:MM".
func FormatTimeOfDay(m int) string {
	return fmt.Sprintf("%02d:%02d", m/60, m%60)
}

// minutesPerDay bounds Window.Start and Window.End.
const minutesPerDay = 24 * 60

// length returns how long the window is open each day.
func (w Window) length() time.Duration {
	m := (w.End - w.Start + minutesPerDay) % minutesPerDay
	return time.Duration(m) * time.Minute
}

// open reports whether local wall-clock time t is inside the window.
func (w Window) open(t time.Time) bool {
	m := t.Hour()*60 + t.Minute()
	if w.Start <= w.End {
		return m >= w.Start && m < w.End
	}
	return m >= w.Start || m < w.End
}

// releasedAt returns when terminal tid of a store in loc gets a version
// issued at since: the first instant at or after since at which the window
// is open in loc, plus the terminal's jitter.
func (w Window) releasedAt(since time.Time, loc *time.Location, tid string) time.Time {
	t := since.In(loc)
	if !w.open(t) {
		// The next local Start after since; today's or tomorrow's.
		for i := 0; i < 3; i++ {
			// time.Date resolves a Start in a daylight-saving gap.
			s := time.Date(t.Year(), t.Month(), t.Day()+i, w.Start/60, w.Start%60, 0, 0, loc)
			if !s.Before(t) {
				t = s
				break
			}
		}
	}
	if w.Jitter > 0 {
		h := fnv.New64a()
		h.Write([]byte(tid))
		t = t.Add(time.Duration(h.Sum64() % uint64(w.Jitter)))
	}
	return t
}

// Freeze is a period [Start, End) in which rollouts stand still.
type Freeze struct {
	Start time.Time `json:"s"`
	End   time.Time `json:"e"`
}

// MaxFreezes bounds Plan.Freezes.
const MaxFreezes = 32

// frozen reports whether now falls in one of the plan's freezes.
func (p Plan) frozen(now time.Time) bool {
	for _, f := range p.Freezes {
		if !now.Before(f.Start) && now.Before(f.End) {
			return true
		}
	}
	return false
}

// Plan limits and defaults.
const (
	MaxStages              = 10
	DefaultMaxFailureRatio = 0.1
	MaxMinStageDuration    = 7 * 24 * time.Hour
	MaxDescription         = 256
	MaxReason              = 256
	MaxAckDetail           = 256
)

// normalize fills the defaults: no stages means [100], a zero ratio 0.1,
// and the payment gate's defaults.
func (p Plan) normalize() Plan {
	if len(p.StagePercents) == 0 {
		p.StagePercents = []uint32{100}
	}
	if p.MaxFailureRatio == 0 {
		p.MaxFailureRatio = DefaultMaxFailureRatio
	}
	if p.Gate != nil {
		g := p.Gate.normalize()
		p.Gate = &g
	}
	return p
}

func (p Plan) validate(v *violations) {
	if len(p.StagePercents) > MaxStages {
		v.add("rollout.stage_percents", "must have at most %d stages", MaxStages)
	}
	for i, pc := range p.StagePercents {
		switch {
		case pc < 1 || pc > 100:
			v.add(fmtIndex("rollout.stage_percents", i), "must be between 1 and 100")
		case i > 0 && pc <= p.StagePercents[i-1]:
			v.add(fmtIndex("rollout.stage_percents", i), "must be greater than the previous stage (%d)", p.StagePercents[i-1])
		}
	}
	if n := len(p.StagePercents); n > 0 && p.StagePercents[n-1] != 100 {
		v.add("rollout.stage_percents", "must end at 100")
	}
	if math.IsNaN(p.MaxFailureRatio) || p.MaxFailureRatio < 0 || p.MaxFailureRatio > 1 {
		v.add("rollout.max_failure_ratio", "must be between 0 and 1")
	}
	if p.MinStageDuration < 0 || p.MinStageDuration > MaxMinStageDuration {
		v.add("rollout.min_stage_duration", "must be between 0 and %s", MaxMinStageDuration)
	}
	p.Gate.validate(v)
	if len(p.Freezes) > MaxFreezes {
		v.add("rollout.freezes", "must have at most %d periods", MaxFreezes)
	}
	for i, f := range p.Freezes {
		if !f.End.After(f.Start) {
			v.add(fmtIndex("rollout.freezes", i), "must end after it starts")
		}
	}
	if w := p.Window; w != nil {
		switch {
		case w.Start < 0 || w.Start >= minutesPerDay || w.End < 0 || w.End >= minutesPerDay:
			v.add("rollout.maintenance_window", "start and end must be times of day, 00:00-23:59")
		case w.Start == w.End:
			v.add("rollout.maintenance_window", "must not be empty (start equals end)")
		case w.Jitter < 0 || w.Jitter >= w.length():
			v.add("rollout.maintenance_window.jitter", "must be at least 0 and shorter than the window (%s)", w.length())
		}
	}
}

// State is the lifecycle state of a rollout (protocol RolloutState
// numbers).
type State int32

// Rollout states.
const (
	StateUnspecified State = iota
	// StateRunning: stages are being rolled out.
	StateRunning
	// StatePaused: paused by an operator, or waiting for ResumeRollout to
	// advance a stage (plans without auto-advance).
	StatePaused
	// StateHalted: the failure ratio was exceeded.
	StateHalted
	// StateAborted: terminals fell back to the previous layer.
	StateAborted
	// StateCompleted: every stage is done.
	StateCompleted
	// StateSuperseded: a newer publish at the same scope replaced it.
	StateSuperseded
)

// String returns the protocol name without prefix, e.g. "RUNNING".
func (s State) String() string {
	switch s {
	case StateRunning:
		return "RUNNING"
	case StatePaused:
		return "PAUSED"
	case StateHalted:
		return "HALTED"
	case StateAborted:
		return "ABORTED"
	case StateCompleted:
		return "COMPLETED"
	case StateSuperseded:
		return "SUPERSEDED"
	}
	return "UNSPECIFIED"
}

// final reports whether the rollout can no longer change.
func (s State) final() bool {
	return s == StateAborted || s == StateCompleted || s == StateSuperseded
}

// Rollout is a snapshot of one rollout and its progress.
type Rollout struct {
	ID      string
	Version uint64
	Scope   Scope
	// Settings is the published layer.
	Settings    *Settings
	Plan        Plan
	State       State
	Stage       int
	Description string
	// Reason says why it halted, paused, aborted or was superseded.
	Reason string
	// Targeted is the number of terminals in the scope; Included those in
	// the current and earlier stages.
	Targeted, Included uint64
	// Applied and Rejected count included terminals by their latest
	// acknowledgement of a version this rollout delivered.
	Applied, Rejected uint64
	// FailureRatio is rejected / acknowledged in the current stage (since
	// the last resume of a halted rollout).
	FailureRatio     float64
	Created, Updated time.Time
	// StageVersions[i] is the version issued to the terminals first
	// included at stage i (StageVersions[0] is Version); Fallback the
	// version issued when it was aborted (0: not aborted).
	StageVersions []uint64
	Fallback      uint64
	// RollbackOf is the version this publish rolled back from, 0 for a
	// plain publish.
	RollbackOf uint64
	// Actor is who published it.
	Actor string
	// Changes is how the layer differs from the scope's previous layer; set
	// only in the results of Publish and Rollback.
	Changes []Change
	// Gate is the payment gate's latest judgement of the current stage; nil
	// without a gate or before the first judgement.
	Gate *GateStatus
}

// CurrentVersion is the newest version the rollout issued: the fallback of
// an aborted rollout, else the current stage's version. A terminal the
// rollout reached runs it or a later one.
func (r Rollout) CurrentVersion() uint64 {
	if r.Fallback != 0 {
		return r.Fallback
	}
	if n := len(r.StageVersions); n > 0 {
		return r.StageVersions[n-1]
	}
	return r.Version
}

// RolloutID returns the ID of the rollout publishing version.
func RolloutID(version uint64) string { return "ro-" + strconv.FormatUint(version, 10) }

// parseRolloutID returns the version of a rollout ID.
func parseRolloutID(id string) (uint64, bool) {
	s, ok := strings.CutPrefix(id, "ro-")
	if !ok || s == "" || s[0] == '0' {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// bucketCount is the resolution of stage selection: a terminal's bucket is
// in [0, bucketCount); stage percent p includes buckets below p*100.
const bucketCount = 10000

// bucket places a terminal in a rollout: a deterministic, uniformly spread
// value in [0, 10000) from SHA-256(rollout ID, "/", terminal ID). It depends
// on nothing else, so stage membership is stable across restarts and
// independent of the fleet's size.
func bucket(rolloutID, terminalID string) uint32 {
	h := sha256.New()
	h.Write([]byte(rolloutID))
	h.Write([]byte{'/'})
	h.Write([]byte(terminalID))
	var sum [sha256.Size]byte
	return uint32(binary.BigEndian.Uint64(h.Sum(sum[:0])[:8]) % bucketCount)
}

// cohortOf returns the first stage whose cumulative percent includes bucket
// b.
func cohortOf(percents []uint32, b uint32) int {
	for i, p := range percents {
		if b < p*(bucketCount/100) {
			return i
		}
	}
	return len(percents) - 1
}

// Effective is the config a terminal should run. Values are shared between
// terminals and never modified: do not change them.
type Effective struct {
	// Version is the terminal's config version (see the package doc).
	Version uint64
	// Settings are the merged settings with server defaults filled in.
	Settings *Settings
	// RolloutID is the rollout that delivered Version, "" when the version
	// came from a fallback after an abort or from a rebind.
	RolloutID string
	// Published is when Version was issued.
	Published time.Time
}

// TerminalRef is the binding of a terminal, as the directory reports it.
type TerminalRef struct {
	TerminalID string
	MerchantID string
	StoreID    string
	// Retired terminals are removed from config push.
	Retired bool
	// TimeZone is the store's IANA time zone ("" when the store has none).
	// It is the terminal's effective time_zone unless a layer sets one.
	TimeZone string
}

// Directory is the terminal population and the catalog of merchants and
// stores, provided by the fleet. It must answer from memory.
type Directory interface {
	// Terminals returns every terminal that is not retired.
	Terminals() []TerminalRef
	// Terminal returns one terminal's current binding; ok is false for an
	// unknown terminal.
	Terminal(terminalID string) (ref TerminalRef, ok bool)
	// MerchantExists reports whether the merchant exists.
	MerchantExists(merchantID string) bool
	// MerchantCurrency returns the merchant's ISO 4217 currency; ok is false
	// for an unknown merchant. Limits published for the merchant must be in
	// it.
	MerchantCurrency(merchantID string) (currency string, ok bool)
	// Merchants returns the IDs of every merchant.
	Merchants() []string
	// StoreExists reports whether the merchant has the store.
	StoreExists(merchantID, storeID string) bool
}

// AckResult is a terminal's answer to a config version (protocol
// ConfigApplyResult numbers).
type AckResult int32

// Acknowledgement results.
const (
	AckUnspecified AckResult = iota
	AckApplied
	AckRejected
)

// PublishRequest is a change of one scope's layer.
//
// By default a publish is a patch: the fields Settings sets replace those of
// the scope's current layer, extra keys are merged one by one, and the rest
// of the layer is kept. With Replace, Settings is the whole new layer. In
// both cases a value of the current layer is removed only when Clear names
// it, and a publish that changes nothing is refused.
type PublishRequest struct {
	Scope    Scope
	Settings *Settings
	// Clear names the fields to remove from the current layer, by protocol
	// name ("daily_limit"), "extra" for every free-form key or "extra.<key>"
	// for one.
	Clear []string
	// Replace makes Settings the whole layer instead of a patch.
	Replace     bool
	Plan        Plan
	Description string
}

// Preview is what a publish would do, computed without publishing.
type Preview struct {
	Scope Scope
	// Current is the scope's current layer (nil: none) and CurrentVersion
	// its version (0: none).
	Current        *Settings
	CurrentVersion uint64
	// Layer is the layer the publish would store.
	Layer   *Settings
	Changes []Change
	// Targeted is the number of terminals in the scope; StageCounts how
	// many of them each stage would add.
	Targeted    uint64
	StageCounts []uint64
	// FirstStage lists the terminals the first stage would reach, sorted,
	// at most MaxPreviewTerminals.
	FirstStage []string
}

// MaxPreviewTerminals bounds Preview.FirstStage.
const MaxPreviewTerminals = 1000
