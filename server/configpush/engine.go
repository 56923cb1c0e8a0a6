package configpush

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store"
)

// Options configure an Engine. The zero value is usable.
type Options struct {
	// Now is the clock (time.Now when nil); tests replace it.
	Now func() time.Time
	// EvalInterval is how often running rollouts are checked for
	// time-based progress (min_stage_duration); 1s when zero.
	EvalInterval time.Duration
	// MaxWatchesPerTerminal bounds concurrent watches of one terminal
	// (DefaultMaxWatchesPerTerminal when zero).
	MaxWatchesPerTerminal int
	// Signals reports payment outcomes per terminal for payment gates;
	// without it, plans with a gate are judged on acknowledgements alone.
	Signals PaymentSignals
}

// Engine holds the settings layers, per-terminal effective configs and
// rollouts, and pushes new versions to watchers. Effective configs are read
// from memory without waiting on storage; every change is durable before
// it becomes visible. It is safe for concurrent use.
type Engine struct {
	db      *store.DB
	audit   *audit.Log
	logger  *slog.Logger
	dir     Directory
	signals PaymentSignals
	opts    Options
	now     func() time.Time
	hub     *Hub
	commit  *committer

	// mu guards the fields below, effs' writers and every rollout's fields.
	// Changes of layers and rollouts hold it across their storage write, so
	// that they are durable before anyone sees them and apply in order.
	mu sync.Mutex
	// seq is the last issued version.
	seq uint64
	// scopes holds each scope's layers.
	scopes map[string]*scopeState
	// live holds the rollouts that still affect terminals (in a scope's
	// stack or as an abort fallback), by version.
	live map[uint64]*rollout
	// terms is the terminal population from the directory.
	terms map[string]*termState
	// memo shares merged settings between terminals with the same layers
	// and store time zone.
	memo map[memoKey]*Settings
	// locs caches loaded time zones by name.
	locs   map[string]*time.Location
	closed bool

	effMu sync.RWMutex // guards effs; writers also hold mu
	// effs is each terminal's current effective config.
	effs map[string]*Effective

	stop     chan struct{}
	loopDone chan struct{}
	closeMu  sync.Mutex // serializes Close
}

// scopeState is the layers published at one scope.
type scopeState struct {
	// stack holds the layers terminals may see, oldest first: at most one
	// completed rollout at the bottom, superseded ones, and at most one
	// unfinished rollout on top. A terminal sees the topmost layer whose
	// rollout includes it.
	stack []*rollout
	// aborted holds aborted rollouts whose fallback versions still count
	// for the terminals they had reached.
	aborted []*rollout
}

// rollout is a live rollout: its record plus acknowledgement counters.
type rollout struct {
	id  string
	rec rolloutRec
	// acks holds each terminal's latest acknowledgement; nil once the
	// rollout no longer tracks health (aborted).
	acks map[string]ackRec
	// cohort counts the targeted terminals first included at each stage;
	// applied and rejected their latest acknowledgements.
	cohort, applied, rejected []uint64
	// winApplied and winRejected count the current stage's
	// acknowledgements since rec.HealthSince.
	winApplied, winRejected uint64
	// gate is the payment watch of the current stage, nil until the first
	// judgement or without a gate.
	gate *gateState
}

// memoKey identifies the inputs of a merge: the visible layer at each scope
// of a chain and the store's time zone.
type memoKey struct {
	layers [4]*rollout
	tz     string
}

// termState is a terminal known to config push.
type termState struct {
	ref  TerminalRef
	bind bindRec
}

// Open loads config push state from db and computes every terminal's
// effective config. dir provides the terminal population and catalog;
// keep it informed of changes with TerminalChanged.
func Open(ctx context.Context, db *store.DB, log *audit.Log, dir Directory, opts Options, logger *slog.Logger) (*Engine, error) {
	if dir == nil {
		return nil, errors.New("configpush: a Directory is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.EvalInterval <= 0 {
		opts.EvalInterval = time.Second
	}
	e := &Engine{
		db: db, audit: log, logger: logger, dir: dir, signals: opts.Signals, opts: opts, now: opts.Now,
		hub:    NewHub(opts.MaxWatchesPerTerminal),
		scopes: map[string]*scopeState{},
		live:   map[uint64]*rollout{},
		terms:  map[string]*termState{},
		memo:   map[memoKey]*Settings{},
		locs:   map[string]*time.Location{},
		effs:   map[string]*Effective{},
		stop:   make(chan struct{}),
	}
	if err := e.load(ctx); err != nil {
		return nil, err
	}
	e.commit = newCommitter(db, e.audit)
	e.loopDone = make(chan struct{})
	go e.loop()
	return e, nil
}

// load rebuilds the in-memory state from storage and the directory.
func (e *Engine) load(ctx context.Context) error {
	binds := map[string]bindRec{}
	acks := map[uint64]map[string]ackRec{}
	var stale [][]byte
	err := e.db.View(func(tx *store.Txn) error {
		if v, err := tx.Get(keySeq); err == nil && len(v) == 8 {
			e.seq = binary.BigEndian.Uint64(v)
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		err := tx.Iterate(prefixRollout, nil, func(k, v []byte) error {
			var rec rolloutRec
			if err := decode(v, &rec); err != nil {
				return fmt.Errorf("configpush: rollout %x: %w", k, err)
			}
			e.seq = max(e.seq, rec.Version, rec.Fallback, slices.Max(append(rec.StageVersions, 0)))
			if rec.Dropped {
				return nil
			}
			rec.Plan = rec.Plan.normalize()
			e.live[rec.Version] = &rollout{id: RolloutID(rec.Version), rec: rec}
			return nil
		})
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		err = tx.Iterate(prefixBind, nil, func(k, v []byte) error {
			var b bindRec
			if err := decode(v, &b); err != nil {
				return fmt.Errorf("configpush: binding %q: %w", k, err)
			}
			e.seq = max(e.seq, b.Version)
			binds[string(k[len(prefixBind):])] = b
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Iterate(prefixAck, nil, func(k, v []byte) error {
			ver, tid, ok := parseAckKey(k)
			r := e.live[ver]
			if !ok || r == nil || r.rec.State == StateAborted {
				stale = append(stale, append([]byte{}, k...))
				return nil
			}
			var a ackRec
			if err := decode(v, &a); err != nil {
				return fmt.Errorf("configpush: ack %q: %w", k, err)
			}
			if acks[ver] == nil {
				acks[ver] = map[string]ackRec{}
			}
			acks[ver][tid] = a
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("configpush: load: %w", err)
	}

	for _, ref := range e.dir.Terminals() {
		if ref.Retired {
			continue
		}
		e.terms[ref.TerminalID] = &termState{ref: ref, bind: binds[ref.TerminalID]}
	}
	byScope := map[string][]*rollout{}
	for _, r := range e.live {
		byScope[r.rec.Scope.key()] = append(byScope[r.rec.Scope.key()], r)
	}
	for key, list := range byScope {
		slices.SortFunc(list, func(a, b *rollout) int { return cmp.Compare(a.rec.Version, b.rec.Version) })
		sc := &scopeState{}
		for _, r := range list {
			if r.rec.State == StateAborted {
				sc.aborted = append(sc.aborted, r)
				continue
			}
			sc.stack = append(sc.stack, r)
			r.acks = map[string]ackRec{}
			e.countCohorts(r)
			for tid, a := range acks[r.rec.Version] {
				t := e.terms[tid]
				if t == nil || !r.rec.Scope.contains(t.ref) {
					continue
				}
				if c, ok := r.includes(tid); ok {
					r.addAck(tid, c, a)
				}
			}
		}
		e.scopes[key] = sc
	}

	all := make([]*termState, 0, len(e.terms))
	for _, t := range e.terms {
		all = append(all, t)
	}
	for _, t := range all {
		e.effs[t.ref.TerminalID] = e.compute(t)
	}
	if len(stale) > 0 {
		// Acknowledgements of rollouts that no longer track them are left
		// over from an interrupted cleanup; remove them.
		err := e.db.Update(func(tx *store.Txn) error {
			for i, k := range stale {
				if i == maxOpsPerTxn {
					break // the rest goes on the next start
				}
				if err := tx.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("configpush: remove stale acknowledgements: %w", err)
		}
	}
	e.logger.Info("config push loaded", "version", e.seq, "rollouts", len(e.live), "terminals", len(e.terms))
	return nil
}

// Close stops the background loop, ends every watch and waits for pending
// writes. The engine must not be used afterwards.
func (e *Engine) Close() error {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	close(e.stop)
	<-e.loopDone
	e.hub.Close()
	e.commit.close()
	return nil
}

// CloseWatches ends every open watch (ErrClosed) and refuses new ones.
// Server shutdown calls it before waiting for in-flight calls, so that
// long-lived streams do not hold up a graceful stop.
func (e *Engine) CloseWatches() { e.hub.Close() }

// loop checks running rollouts for time-based progress until Close.
func (e *Engine) loop() {
	defer close(e.loopDone)
	t := time.NewTicker(e.opts.EvalInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
		}
		e.mu.Lock()
		for _, r := range e.sortedLive() {
			if r.rec.State == StateRunning && r.acks != nil {
				if r.rec.Plan.Gate != nil && e.signals != nil {
					e.judgeGate(r, e.now().UTC())
				}
				e.evaluate(r)
			}
		}
		if terms := e.windowed(); len(terms) > 0 {
			e.setEffective(terms)
		}
		e.mu.Unlock()
	}
}

// sortedLive returns the live rollouts in version order.
func (e *Engine) sortedLive() []*rollout {
	out := make([]*rollout, 0, len(e.live))
	for _, r := range e.live {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *rollout) int { return cmp.Compare(a.rec.Version, b.rec.Version) })
	return out
}

// Effective returns the config terminalID should run, from memory. ok is
// false for a terminal config push does not know.
func (e *Engine) Effective(terminalID string) (cfg *Effective, ok bool) {
	e.effMu.RLock()
	cfg, ok = e.effs[terminalID]
	e.effMu.RUnlock()
	return cfg, ok
}

// DesiredConfigVersion returns the config version terminalID should run, 0
// if none (heartbeat responses carry it).
func (e *Engine) DesiredConfigVersion(terminalID string) uint64 {
	if cfg, ok := e.Effective(terminalID); ok {
		return cfg.Version
	}
	return 0
}

// HeartbeatInterval returns terminalID's effective heartbeat interval, 0 for
// an unknown terminal.
func (e *Engine) HeartbeatInterval(terminalID string) time.Duration {
	if cfg, ok := e.Effective(terminalID); ok && cfg.Settings.HeartbeatInterval != nil {
		return *cfg.Settings.HeartbeatInterval
	}
	return 0
}

// Watch opens a watch of terminalID's config for a terminal that already
// has knownVersion: the watcher's first Next returns the current config at
// once if knownVersion is behind, then each newer version. A knownVersion
// ahead of the server's (e.g. after a restore from backup) is treated as 0,
// so the terminal resynchronizes.
func (e *Engine) Watch(terminalID string, knownVersion uint64) (*Watcher, error) {
	w, err := e.hub.Subscribe(terminalID, knownVersion)
	if err != nil {
		return nil, err
	}
	cfg, ok := e.Effective(terminalID)
	if !ok {
		w.Close()
		return nil, ErrUnknownTerminal
	}
	if knownVersion > cfg.Version {
		cfg = e.catchUp(terminalID, knownVersion, w)
	}
	if cfg != nil {
		w.offer(cfg)
	}
	return w, nil
}

// catchUp answers a terminal that reports a config version ahead of its
// current one: the server issued it, and the terminal's version then went
// down, as when a rebind was stored by the fleet but not here before a
// crash. Versions never go down for a terminal, so it gets a fresh version
// of its current config. A version the server never issued (its data was
// restored from an older backup) cannot be caught up with safely, as the
// terminal could name any number: the current config is sent again under
// its own version.
func (e *Engine) catchUp(tid string, known uint64, w *Watcher) *Effective {
	e.mu.Lock()
	if t := e.terms[tid]; t != nil && !e.closed && known <= e.seq {
		if b, err := e.newBind(tid, nil); err == nil {
			t.bind = b
			e.setEffective([]*termState{t})
		} else {
			e.logger.Error("config push: catch-up version not stored", "terminal", tid, "err", err)
		}
	}
	e.mu.Unlock()
	cfg, _ := e.Effective(tid)
	if cfg != nil && known > cfg.Version {
		e.logger.Warn("terminal reports a config version the server never issued; resending its config",
			"terminal", tid, "known", known, "version", cfg.Version)
		w.mu.Lock()
		w.sent = 0
		w.mu.Unlock()
	}
	return cfg
}

// NotifyCommands wakes terminalID's watchers because remote commands are
// waiting for it.
func (e *Engine) NotifyCommands(terminalID string) { e.hub.NotifyCommands(terminalID) }

// Watching returns the number of open watches.
func (e *Engine) Watching() int { return e.hub.Watching() }

// TerminalChanged tells config push that a terminal was provisioned,
// rebound, retired or otherwise changed; it reads the terminal's current
// binding from the directory, so notifications may be repeated or arrive
// late. A rebound terminal gets a new, higher version for its new chain
// (written to storage before it returns); a retired or unknown one is
// forgotten and its watches end.
func (e *Engine) TerminalChanged(terminalID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	ref, ok := e.dir.Terminal(terminalID)
	if !ok {
		ref = TerminalRef{TerminalID: terminalID, Retired: true}
	}
	tid := ref.TerminalID
	old := e.terms[tid]
	switch {
	case ref.Retired:
		if old == nil {
			return
		}
		e.leaveRollouts(old.ref, nil)
		delete(e.terms, tid)
		e.effMu.Lock()
		delete(e.effs, tid)
		e.effMu.Unlock()
		e.hub.CloseTerminal(tid)
		return
	case old == nil:
		t := &termState{ref: ref}
		e.terms[tid] = t
		e.joinRollouts(ref, nil)
		e.setEffective([]*termState{t})
		return
	case old.ref.MerchantID == ref.MerchantID && old.ref.StoreID == ref.StoreID:
		return
	}
	// Rebind: the chain changes, possibly to layers with lower versions, so
	// the terminal gets a fresh version above everything it had. The
	// acknowledgements of the rollouts it leaves go too: kept, they would
	// count again after a restart if it came back.
	b, err := e.newBind(tid, e.leavingAcks(old.ref, &ref))
	if err != nil {
		e.logger.Error("config push: rebind not stored; terminal keeps its config until the next change", "terminal", tid, "err", err)
		return
	}
	oldRef := old.ref
	e.leaveRollouts(oldRef, &ref)
	old.ref, old.bind = ref, b
	e.joinRollouts(ref, &oldRef)
	e.setEffective([]*termState{old})
}

// newBind stores a fresh version, above every version issued so far, as
// terminal tid's bind version, together with more writes. Called with mu
// held.
func (e *Engine) newBind(tid string, more []op) (bindRec, error) {
	v := e.seq + 1
	b := bindRec{Version: v, Time: e.now().UTC()}
	o, err := setOp(keyBind(tid), b)
	if err == nil {
		err = e.commit.submit(append([]op{seqOp(v), o}, more...)).wait()
	}
	if err != nil {
		return bindRec{}, err
	}
	e.seq = v
	return b, nil
}

// leaves reports whether terminal ref, moving to next (nil: none), leaves
// the tracked rollout r.
func leaves(r *rollout, ref TerminalRef, next *TerminalRef) bool {
	return r.acks != nil && r.rec.Scope.contains(ref) && (next == nil || !r.rec.Scope.contains(*next))
}

// leavingAcks returns deletes of the stored acknowledgements of terminal
// ref for the rollouts it leaves for next (see leaveRollouts).
func (e *Engine) leavingAcks(ref TerminalRef, next *TerminalRef) []op {
	var ops []op
	for _, r := range e.live {
		if _, ok := r.acks[ref.TerminalID]; ok && leaves(r, ref, next) {
			ops = append(ops, op{key: keyAck(r.rec.Version, ref.TerminalID), del: true})
		}
	}
	return ops
}

// leaveRollouts removes terminal ref from the counters of the rollouts whose
// scope contains it but not next (nil: none).
func (e *Engine) leaveRollouts(ref TerminalRef, next *TerminalRef) {
	for _, r := range e.live {
		if !leaves(r, ref, next) {
			continue
		}
		c := cohortOf(r.rec.Plan.StagePercents, bucket(r.id, ref.TerminalID))
		r.cohort[c]--
		if a, ok := r.acks[ref.TerminalID]; ok {
			r.dropAck(ref.TerminalID, c, a)
		}
	}
}

// joinRollouts adds terminal ref to the counters of the rollouts whose scope
// contains it but not prev (nil: none).
func (e *Engine) joinRollouts(ref TerminalRef, prev *TerminalRef) {
	for _, r := range e.live {
		if r.acks == nil || !r.rec.Scope.contains(ref) || (prev != nil && r.rec.Scope.contains(*prev)) {
			continue
		}
		r.cohort[cohortOf(r.rec.Plan.StagePercents, bucket(r.id, ref.TerminalID))]++
	}
}

// visible returns the layer of the scope that terminal t sees, the
// topmost whose rollout includes it and, under a maintenance window, has
// released its version to it, and the stage that first included it.
func (e *Engine) visible(sc *scopeState, t *termState) (r *rollout, stage int, ok bool) {
	for j := len(sc.stack) - 1; j >= 0; j-- {
		r := sc.stack[j]
		if c, ok := r.includes(t.ref.TerminalID); ok && e.released(r, c, t) {
			return r, c, true
		}
	}
	return nil, 0, false
}

// released reports whether rollout r's plan lets terminal t, first
// included at stage c, have its version now: always without a maintenance
// window; with one, once the window has opened in the store's local time
// since the stage started, plus the terminal's jitter. It only turns true
// as the clock moves on, so a terminal's version never goes back.
func (e *Engine) released(r *rollout, c int, t *termState) bool {
	w := r.rec.Plan.Window
	if w == nil {
		return true
	}
	at := w.releasedAt(r.rec.StageTimes[c], e.location(t.ref.TimeZone), t.ref.TerminalID)
	return !e.now().Before(at)
}

// location returns the time zone named tz, UTC when empty or unknown
// (zones are checked when stores are created).
func (e *Engine) location(tz string) *time.Location {
	if tz == "" {
		return time.UTC
	}
	if loc, ok := e.locs[tz]; ok {
		return loc
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		e.logger.Warn("config push: unknown store time zone; maintenance windows use UTC", "time_zone", tz)
		loc = time.UTC
	}
	e.locs[tz] = loc
	return loc
}

// windowed returns the terminals of live rollouts with a maintenance
// window whose versions may still be released: a window opens at least once
// a day, so two days (jitter and a daylight-saving hour included) after
// the latest stage started every included terminal has its version. Called
// with mu held, which effs' writers hold too.
func (e *Engine) windowed() []*termState {
	var out []*termState
	now := e.now()
	for _, r := range e.sortedLive() {
		st := r.rec.StageTimes
		if r.rec.Plan.Window == nil || !now.Before(st[len(st)-1].Add(49*time.Hour)) {
			continue
		}
		for _, t := range e.termsIn(r.rec.Scope) {
			// Only terminals released since and not yet on the version.
			c, ok := r.includes(t.ref.TerminalID)
			if cur := e.effs[t.ref.TerminalID]; ok && (cur == nil || cur.Version < r.rec.StageVersions[c]) && e.released(r, c, t) {
				out = append(out, t)
			}
		}
	}
	return out
}

// compute returns terminal t's effective config from the current layers.
//
// At each scope of the chain the terminal sees the topmost layer whose
// rollout includes it, and that layer contributes the version issued to
// the stage that first included the terminal. Fallbacks of aborted
// rollouts that had reached the terminal and the terminal's rebind version
// contribute too. The effective version is the largest contribution.
func (e *Engine) compute(t *termState) *Effective {
	tid := t.ref.TerminalID
	var layers [4]*rollout
	best := &Effective{Version: t.bind.Version, Published: t.bind.Time}
	for i, key := range chainKeys(t.ref) {
		sc := e.scopes[key]
		if sc == nil {
			continue
		}
		if r, c, ok := e.visible(sc, t); ok {
			layers[i] = r
			if v := r.rec.StageVersions[c]; v > best.Version {
				best.Version, best.RolloutID, best.Published = v, r.id, r.rec.StageTimes[c]
			}
		}
		for _, a := range sc.aborted {
			if a.rec.Fallback > best.Version && bucket(a.id, tid) < stageLimit(a.rec.Plan, a.rec.Stage) {
				best.Version, best.RolloutID, best.Published = a.rec.Fallback, "", a.rec.FallbackTime
			}
		}
	}
	key := memoKey{layers, t.ref.TimeZone}
	s, ok := e.memo[key]
	if !ok {
		s = merge(chainLayers(layers, t.ref.TimeZone))
		e.memo[key] = s
	}
	best.Settings = s
	return best
}

// chainLayers returns the settings to merge for a chain's visible layers,
// widest first. The store's time zone sits just below the store's layer: a
// store's own time zone reaches its terminals unless the store's or the
// terminal's layer sets another, and wider layers cannot override it.
func chainLayers(layers [4]*rollout, storeTZ string) []*Settings {
	in := make([]*Settings, 0, 5)
	for i, r := range layers {
		if i == int(LevelStore) && storeTZ != "" {
			tz := storeTZ
			in = append(in, &Settings{TimeZone: &tz})
		}
		if r != nil {
			in = append(in, r.rec.Settings)
		}
	}
	return in
}

// setEffective recomputes the terminals' effective configs and pushes
// those whose version changed to their watchers.
func (e *Engine) setEffective(terms []*termState) {
	type change struct {
		tid string
		cfg *Effective
	}
	var changed []change
	e.effMu.RLock()
	for _, t := range terms {
		cfg := e.compute(t)
		cur := e.effs[t.ref.TerminalID]
		switch {
		case cur == nil || cfg.Version > cur.Version:
			changed = append(changed, change{t.ref.TerminalID, cfg})
		case cfg.Version < cur.Version:
			// Cannot happen by construction; refuse to go backwards.
			e.logger.Error("config push: computed version below the terminal's current one; keeping the current",
				"terminal", t.ref.TerminalID, "computed", cfg.Version, "current", cur.Version)
		}
	}
	e.effMu.RUnlock()
	if len(changed) == 0 {
		return
	}
	e.effMu.Lock()
	for _, c := range changed {
		e.effs[c.tid] = c.cfg
	}
	e.effMu.Unlock()
	for _, c := range changed {
		e.hub.Publish(c.tid, c.cfg)
	}
}

// termsIn returns the terminals in scope s.
func (e *Engine) termsIn(s Scope) []*termState {
	if s.Level() == LevelTerminal {
		if t := e.terms[s.TerminalID]; t != nil {
			return []*termState{t}
		}
		return nil
	}
	out := make([]*termState, 0, len(e.terms))
	for _, t := range e.terms {
		if s.contains(t.ref) {
			out = append(out, t)
		}
	}
	return out
}

// stageLimit is the bucket bound of the plan's stage: buckets below it are
// included.
func stageLimit(p Plan, stage int) uint32 {
	return p.StagePercents[stage] * (bucketCount / 100)
}

// includes reports whether the rollout, at its current stage, includes the
// terminal, and at which stage it was first included.
func (r *rollout) includes(terminalID string) (int, bool) {
	b := bucket(r.id, terminalID)
	if b >= stageLimit(r.rec.Plan, r.rec.Stage) {
		return 0, false
	}
	return cohortOf(r.rec.Plan.StagePercents, b), true
}

// countCohorts counts the targeted terminals of each stage.
func (e *Engine) countCohorts(r *rollout) {
	r.cohort = make([]uint64, len(r.rec.Plan.StagePercents))
	r.applied = make([]uint64, len(r.cohort))
	r.rejected = make([]uint64, len(r.cohort))
	for _, t := range e.termsIn(r.rec.Scope) {
		r.cohort[cohortOf(r.rec.Plan.StagePercents, bucket(r.id, t.ref.TerminalID))]++
	}
}

// addAck counts a terminal's acknowledgement, first included at stage c.
func (r *rollout) addAck(tid string, c int, a ackRec) {
	r.acks[tid] = a
	inWindow := r.inWindow(c, a)
	if a.Result == AckApplied {
		r.applied[c]++
		if inWindow {
			r.winApplied++
		}
	} else {
		r.rejected[c]++
		if inWindow {
			r.winRejected++
		}
	}
}

// inWindow reports whether acknowledgement a of a terminal of stage c
// counts toward the current failure-ratio window. It is decided by the
// window's epoch, not by time: an acknowledgement stamped at the same
// instant as a resume (or later than it, after the clock was stepped back)
// would otherwise be counted out of a window it was never counted into,
// wrapping the counter around.
func (r *rollout) inWindow(c int, a ackRec) bool {
	if c != r.rec.Stage {
		return false
	}
	if a.Epoch == 0 && r.rec.HealthEpoch == 0 {
		return !a.Time.Before(r.rec.HealthSince) // written before epochs
	}
	return a.Epoch == r.rec.HealthEpoch
}

// dropAck removes a counted acknowledgement.
func (r *rollout) dropAck(tid string, c int, a ackRec) {
	delete(r.acks, tid)
	inWindow := r.inWindow(c, a)
	if a.Result == AckApplied {
		r.applied[c]--
		if inWindow {
			r.winApplied--
		}
	} else {
		r.rejected[c]--
		if inWindow {
			r.winRejected--
		}
	}
}

// progress returns the rollout's counters.
func (r *rollout) progress() counts {
	if r.rec.Final != nil {
		return *r.rec.Final
	}
	var c counts
	for i := range r.cohort {
		c.Targeted += r.cohort[i]
		if i <= r.rec.Stage {
			c.Included += r.cohort[i]
		}
		c.Applied += r.applied[i]
		c.Rejected += r.rejected[i]
	}
	if n := r.winApplied + r.winRejected; n > 0 {
		c.FailureRatio = float64(r.winRejected) / float64(n)
	}
	return c
}

// snapshot returns the public view of the rollout.
func (r *rollout) snapshot() Rollout {
	c := r.progress()
	out := rolloutFromRec(r.rec, c)
	if r.gate != nil && r.rec.Plan.Gate != nil {
		st := r.gate.last
		out.Gate = &st
	}
	return out
}

func rolloutFromRec(rec rolloutRec, c counts) Rollout {
	return Rollout{
		ID: RolloutID(rec.Version), Version: rec.Version, Scope: rec.Scope, Settings: rec.Settings,
		Plan: rec.Plan, State: rec.State, Stage: rec.Stage, Description: rec.Description, Reason: rec.Reason,
		Targeted: c.Targeted, Included: c.Included, Applied: c.Applied, Rejected: c.Rejected,
		FailureRatio: c.FailureRatio, Created: rec.Created, Updated: rec.Updated,
		StageVersions: slices.Clone(rec.StageVersions), Fallback: rec.Fallback, RollbackOf: rec.RollbackOf, Actor: rec.Actor,
	}
}

// record writes an audit event, if there is an audit trail.
func (e *Engine) record(ev audit.Event) {
	if e.audit != nil {
		e.audit.Record(ev)
	}
}
