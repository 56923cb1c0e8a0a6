package configpush

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store"
)

// Publish changes the layer of req's scope (a patch of the current layer
// unless req.Replace; see PublishRequest), stores it under a new version and
// starts its rollout: the terminals of the first stage get the new effective
// config at once (pushed to their watchers), the others keep their previous
// one until their stage is reached. An unfinished rollout at the same scope
// is superseded. It returns the new rollout.
//
// It fails closed: a publish that changes nothing, that would drop a value
// of the current layer that req.Clear does not name, or whose limits are
// not in the currency of every merchant the scope reaches is refused with a
// ValidationError.
func (e *Engine) Publish(ctx context.Context, req PublishRequest, who audit.Actor) (Rollout, error) {
	if err := req.validate(); err != nil {
		return Rollout{}, err
	}
	if err := ctx.Err(); err != nil {
		return Rollout{}, err
	}
	plan := req.Plan.normalize()
	e.mu.Lock()
	defer e.mu.Unlock()
	cur, layer, _, err := e.prepare(req)
	if err != nil {
		return Rollout{}, err
	}
	return e.publishLocked(req.Scope, layer, plan, req.Description, who, cur, 0)
}

// Preview returns what Publish(req) would do, publishing nothing: the
// current and resulting layers, the changed fields and the terminals the
// rollout would reach.
func (e *Engine) Preview(ctx context.Context, req PublishRequest) (Preview, error) {
	if err := req.validate(); err != nil {
		return Preview{}, err
	}
	if err := ctx.Err(); err != nil {
		return Preview{}, err
	}
	plan := req.Plan.normalize()
	e.mu.Lock()
	defer e.mu.Unlock()
	cur, layer, changes, err := e.prepare(req)
	if err != nil {
		return Preview{}, err
	}
	p := Preview{Scope: req.Scope, Layer: layer, Changes: changes, StageCounts: make([]uint64, len(plan.StagePercents))}
	if cur != nil {
		p.Current, p.CurrentVersion = cur.rec.Settings, cur.rec.Version
	}
	id := RolloutID(e.seq + 1)
	for _, t := range e.termsIn(req.Scope) {
		c := cohortOf(plan.StagePercents, bucket(id, t.ref.TerminalID))
		p.StageCounts[c]++
		p.Targeted++
		if c == 0 {
			p.FirstStage = append(p.FirstStage, t.ref.TerminalID)
		}
	}
	slices.Sort(p.FirstStage)
	if len(p.FirstStage) > MaxPreviewTerminals {
		p.FirstStage = p.FirstStage[:MaxPreviewTerminals]
	}
	return p, nil
}

// validate checks the request's shape before the engine is locked.
func (req PublishRequest) validate() error {
	var v violations
	req.Scope.validate(&v)
	req.Settings.validate("settings.", &v)
	req.Plan.validate(&v)
	checkText(&v, "description", req.Description, MaxDescription)
	return v.err()
}

// prepare checks req against the current state and returns the scope's
// current layer (nil: none), the layer to publish and how it differs.
// Called with mu held.
func (e *Engine) prepare(req PublishRequest) (cur *rollout, layer *Settings, changes []Change, err error) {
	if e.closed {
		return nil, nil, nil, ErrClosed
	}
	if err := e.checkScope(req.Scope); err != nil {
		return nil, nil, nil, err
	}
	cur = e.currentLayer(req.Scope)
	var curSettings *Settings
	if cur != nil {
		curSettings = cur.rec.Settings
	}
	var v violations
	layer = patch(curSettings, req.Settings.Clone(), req.Clear, req.Replace, &v)
	changes = Diff(curSettings, layer)
	if len(changes) == 0 && len(v) == 0 {
		if cur == nil {
			v.add("settings", "is empty and %s has no layer: nothing to publish", req.Scope)
		} else {
			v.add("settings", "changes nothing in the current layer of %s (version %d)", req.Scope, cur.rec.Version)
		}
	}
	e.checkCurrencies(req.Scope, layer, &v)
	if err := v.err(); err != nil {
		return nil, nil, nil, err
	}
	return cur, layer, changes, nil
}

// currentLayer returns the rollout holding the scope's current layer, the
// newest one that was not aborted, or nil. Called with mu held.
func (e *Engine) currentLayer(s Scope) *rollout {
	if sc := e.scopes[s.key()]; sc != nil && len(sc.stack) > 0 {
		return sc.stack[len(sc.stack)-1]
	}
	return nil
}

// checkCurrencies requires the layer's limits to be in the currency of
// every merchant the scope reaches: a limit in another currency declines
// every payment of that merchant. Called with mu held.
func (e *Engine) checkCurrencies(s Scope, layer *Settings, v *violations) {
	var merchants []string
	switch s.Level() {
	case LevelGlobal:
		merchants = e.dir.Merchants()
		slices.Sort(merchants)
	case LevelTerminal:
		if t := e.terms[s.TerminalID]; t != nil {
			merchants = []string{t.ref.MerchantID}
		}
	default:
		merchants = []string{s.MerchantID}
	}
	for _, l := range []struct {
		name string
		m    *Money
	}{{"per_transaction_limit", layer.PerTransactionLimit}, {"daily_limit", layer.DailyLimit}, {"offline_floor_limit", layer.OfflineFloorLimit}} {
		if l.m == nil {
			continue
		}
		var wrong []string
		for _, mid := range merchants {
			if cur, ok := e.dir.MerchantCurrency(mid); ok && cur != l.m.Currency {
				wrong = append(wrong, mid+" ("+cur+")")
			}
		}
		if len(wrong) > 0 {
			more := ""
			if len(wrong) > 5 {
				more = fmt.Sprintf(" and %d more", len(wrong)-5)
				wrong = wrong[:5]
			}
			v.add("settings."+l.name+".currency", "is %s, but %s reaches merchant %s%s; a limit in another currency declines every payment",
				l.m.Currency, s, strings.Join(wrong, ", "), more)
		}
	}
}

// publishLocked stores layer as scope's new layer and starts its rollout.
// cur is the scope's current layer the change was computed from; rollbackOf
// names the version a rollback undoes. Called with mu held.
func (e *Engine) publishLocked(scope Scope, layer *Settings, plan Plan, desc string, who audit.Actor, cur *rollout, rollbackOf uint64) (Rollout, error) {
	now := e.now().UTC()
	version := e.seq + 1
	r := &rollout{id: RolloutID(version), rec: rolloutRec{
		Version: version, Scope: scope, Settings: layer, Plan: plan,
		Description: desc, Actor: who.Name, State: StateRunning,
		StageVersions: []uint64{version}, StageTimes: []time.Time{now},
		HealthSince: now, HealthEpoch: 1, Created: now, Updated: now, RollbackOf: rollbackOf,
	}}
	ops := []op{seqOp(version)}
	o, err := setOp(keyRollout(version), &r.rec)
	if err != nil {
		return Rollout{}, err
	}
	ops = append(ops, o)

	key := scope.key()
	sc := e.scopes[key]
	var superseded *rollout
	var supersededRec rolloutRec
	if sc != nil && len(sc.stack) > 0 {
		if top := sc.stack[len(sc.stack)-1]; !top.rec.State.final() {
			superseded = top
			supersededRec = top.rec
			supersededRec.State, supersededRec.Awaiting = StateSuperseded, false
			supersededRec.Reason = "superseded by " + r.id
			supersededRec.Updated = now
			o, err := setOp(keyRollout(top.rec.Version), &supersededRec)
			if err != nil {
				return Rollout{}, err
			}
			ops = append(ops, o)
		}
	}
	if err := e.commit.submit(ops).wait(); err != nil {
		return Rollout{}, fmt.Errorf("configpush: store publish: %w", err)
	}

	e.seq = version
	if sc == nil {
		sc = &scopeState{}
		e.scopes[key] = sc
	}
	if superseded != nil {
		superseded.rec = supersededRec
	}
	r.acks = map[string]ackRec{}
	e.countCohorts(r)
	sc.stack = append(sc.stack, r)
	e.live[version] = r
	e.setEffective(e.termsIn(scope))

	var prev *Settings
	attrs := map[string]string{
		"version": strconv.FormatUint(version, 10), "rollout_id": r.id,
		"stages": stagesString(plan.StagePercents), "scope": scope.String(),
	}
	if cur != nil {
		prev = cur.rec.Settings
		attrs["previous_version"] = strconv.FormatUint(cur.rec.Version, 10)
	}
	changes := Diff(prev, layer)
	var changed []string
	for _, c := range changes {
		changed = append(changed, c.Field)
	}
	attrs["changed_fields"] = strings.Join(changed, ",")
	what := "published"
	if rollbackOf != 0 {
		what = "rolled back from version " + strconv.FormatUint(rollbackOf, 10)
		attrs["rollback_of"] = strconv.FormatUint(rollbackOf, 10)
	}
	e.record(audit.Event{
		Type: audit.ConfigPublished, Actor: who.Name, Peer: who.Peer,
		MerchantID: scope.MerchantID, StoreID: scope.StoreID, TerminalID: scope.TerminalID,
		Message:    fmt.Sprintf("config version %d %s at %s", version, what, scope),
		Attributes: attrs,
	})
	if superseded != nil {
		e.recordChange(superseded, who, "superseded")
	}
	e.logger.Info("config published", "version", version, "scope", scope.String(),
		"stages", stagesString(plan.StagePercents), "targeted", r.progress().Targeted, "changed_fields", attrs["changed_fields"])
	e.evaluate(r)
	out := r.snapshot()
	out.Changes = changes
	return out, nil
}

// checkScope reports ErrScopeNotFound for a scope naming something that
// does not exist.
func (e *Engine) checkScope(s Scope) error {
	switch s.Level() {
	case LevelMerchant:
		if !e.dir.MerchantExists(s.MerchantID) {
			return fmt.Errorf("%w: merchant %s", ErrScopeNotFound, s.MerchantID)
		}
	case LevelStore:
		if !e.dir.StoreExists(s.MerchantID, s.StoreID) {
			return fmt.Errorf("%w: store %s/%s", ErrScopeNotFound, s.MerchantID, s.StoreID)
		}
	case LevelTerminal:
		if e.terms[s.TerminalID] == nil {
			return fmt.Errorf("%w: terminal %s", ErrScopeNotFound, s.TerminalID)
		}
	}
	return nil
}

// evaluate moves a running rollout on when its current stage allows:
// halting when the failure ratio is exceeded, completing a healthy last
// stage, and advancing (or, without auto-advance, pausing to wait for the
// operator) after a healthy earlier one. The current stage is healthy when
// it ran for at least min_stage_duration, every terminal in it acknowledged
// (or, with a positive min_stage_duration, at least half did) and the
// failure ratio is within bounds. Called with mu held.
func (e *Engine) evaluate(r *rollout) {
	for r.rec.State == StateRunning && r.acks != nil {
		rec := r.rec
		n := r.cohort[rec.Stage]
		acked := r.applied[rec.Stage] + r.rejected[rec.Stage]
		ratio := 0.0
		if w := r.winApplied + r.winRejected; w > 0 {
			ratio = float64(r.winRejected) / float64(w)
		}
		now := e.now().UTC()
		if ratio > rec.Plan.MaxFailureRatio {
			rec.State = StateHalted
			rec.Reason = fmt.Sprintf("failure ratio %.3f exceeded %.3f in stage %d (%d of %d acknowledgements rejected)",
				ratio, rec.Plan.MaxFailureRatio, rec.Stage+1, r.winRejected, r.winApplied+r.winRejected)
			rec.Updated = now
			if e.storeChange(r, rec, nil, audit.Actor{Name: "system"}, "halted") {
				e.logger.Warn("rollout halted", "rollout", r.id, "reason", rec.Reason)
			}
			return
		}
		if e.gateBlocks(r, now) || rec.Plan.frozen(now) {
			return
		}
		ran := now.Sub(rec.StageTimes[rec.Stage]) >= rec.Plan.MinStageDuration
		enough := acked >= n || (rec.Plan.MinStageDuration > 0 && 2*acked >= n)
		if !ran || !enough {
			return
		}
		if r.gate != nil && rec.Plan.Gate != nil {
			e.recordGate(r, r.gate.last)
		}
		last := rec.Stage == len(rec.Plan.StagePercents)-1
		switch {
		case last:
			e.complete(r, now)
			return
		case rec.Plan.AutoAdvance:
			if !e.advance(r, audit.Actor{Name: "system"}) {
				return
			}
		default:
			rec.State, rec.Awaiting = StatePaused, true
			rec.Reason = fmt.Sprintf("stage %d of %d is healthy; resume to advance", rec.Stage+1, len(rec.Plan.StagePercents))
			rec.Updated = now
			if e.store(r, rec, nil) {
				e.recordChange(r, audit.Actor{Name: "system"}, "waiting to advance")
			}
			return
		}
	}
}

// store writes rec (with extra ops) and, once durable, makes it the
// rollout's record. It reports success; failures are logged and leave the
// rollout unchanged. Called with mu held.
func (e *Engine) store(r *rollout, rec rolloutRec, extra []op) bool {
	return e.storeAudited(r, rec, extra, nil)
}

// storeChange is store with the change's audit event committed in the
// same transaction: a halted or completed rollout (which webhooks report)
// has its event after any crash. Called with mu held.
func (e *Engine) storeChange(r *rollout, rec rolloutRec, extra []op, who audit.Actor, what string) bool {
	return e.storeAudited(r, rec, extra, []audit.Event{changeEvent(r.id, rec, who, what)})
}

func (e *Engine) storeAudited(r *rollout, rec rolloutRec, extra []op, evs []audit.Event) bool {
	o, err := setOp(keyRollout(rec.Version), &rec)
	if err == nil {
		err = e.commit.submitAudited(append([]op{o}, extra...), evs).wait()
	}
	if err != nil {
		e.logger.Error("config push: rollout change not stored", "rollout", r.id, "state", rec.State.String(), "err", err)
		return false
	}
	r.rec = rec
	return true
}

// advance moves r to its next stage under a new version, pushing the new
// layer to the terminals the stage adds. Called with mu held.
func (e *Engine) advance(r *rollout, who audit.Actor) bool {
	now := e.now().UTC()
	v := e.seq + 1
	rec := r.rec
	rec.Stage++
	rec.StageVersions = append(slices.Clone(rec.StageVersions), v)
	rec.StageTimes = append(slices.Clone(rec.StageTimes), now)
	rec.State, rec.Awaiting, rec.Reason = StateRunning, false, ""
	rec.HealthSince, rec.Updated = now, now
	rec.HealthEpoch++
	if !e.store(r, rec, []op{seqOp(v)}) {
		return false
	}
	e.seq = v
	r.winApplied, r.winRejected = 0, 0
	var added []*termState
	for _, t := range e.termsIn(rec.Scope) {
		if c, ok := r.includes(t.ref.TerminalID); ok && c == rec.Stage {
			added = append(added, t)
		}
	}
	e.setEffective(added)
	e.logger.Info("rollout advanced", "rollout", r.id, "stage", rec.Stage+1, "version", v, "terminals", len(added))
	e.recordChange(r, who, "advanced")
	return true
}

// complete marks r completed and drops the layers below it at its scope,
// which no terminal can see any more. Called with mu held.
func (e *Engine) complete(r *rollout, now time.Time) {
	sc := e.scopes[r.rec.Scope.key()]
	rec := r.rec
	rec.State, rec.Reason, rec.Updated = StateCompleted, "", now
	var (
		recOps, ackOps []op
		dropped        []*rollout
		droppedRecs    []rolloutRec
	)
	for _, old := range append(append([]*rollout{}, sc.stack...), sc.aborted...) {
		if old == r {
			continue
		}
		dr := old.rec
		c := old.progress()
		dr.Dropped, dr.Final, dr.Updated = true, &c, now
		o, err := setOp(keyRollout(dr.Version), &dr)
		if err != nil {
			e.logger.Error("config push: encode dropped rollout", "rollout", old.id, "err", err)
			return
		}
		recOps = append(recOps, o)
		for tid := range old.acks {
			ackOps = append(ackOps, op{key: keyAck(dr.Version, tid), del: true})
		}
		dropped = append(dropped, old)
		droppedRecs = append(droppedRecs, dr)
	}
	if !e.storeChange(r, rec, append(recOps, ackOps...), audit.Actor{Name: "system"}, "completed") {
		return
	}
	for i, old := range dropped {
		old.rec, old.acks = droppedRecs[i], nil
		delete(e.live, old.rec.Version)
	}
	sc.stack, sc.aborted = []*rollout{r}, nil
	if len(dropped) > 0 {
		clear(e.memo)
	}
	e.logger.Info("rollout completed", "rollout", r.id)
}

// lookup returns the live rollout with the given ID, or ErrRolloutNotFound
// / ErrRolloutState for one that is no longer live. Called with mu held.
func (e *Engine) lookup(id string) (*rollout, error) {
	v, ok := parseRolloutID(id)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrRolloutNotFound, id)
	}
	if r := e.live[v]; r != nil {
		return r, nil
	}
	if _, err := e.db.Get(keyRollout(v)); err == nil {
		return nil, fmt.Errorf("%w: %s is finished", ErrRolloutState, id)
	}
	return nil, fmt.Errorf("%w: %q", ErrRolloutNotFound, id)
}

// Pause stops a running rollout from advancing; terminals already in it
// keep its version. Pausing a paused rollout changes nothing.
func (e *Engine) Pause(ctx context.Context, id, reason string, who audit.Actor) (Rollout, error) {
	var v violations
	checkText(&v, "reason", reason, MaxReason)
	if err := v.err(); err != nil {
		return Rollout{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	r, err := e.lookup(id)
	if err != nil {
		return Rollout{}, err
	}
	switch r.rec.State {
	case StatePaused:
		return r.snapshot(), nil
	case StateRunning:
	default:
		return Rollout{}, fmt.Errorf("%w: %s is %s", ErrRolloutState, id, r.rec.State)
	}
	if err := ctx.Err(); err != nil {
		return Rollout{}, err
	}
	rec := r.rec
	rec.State, rec.Awaiting, rec.Updated = StatePaused, false, e.now().UTC()
	rec.Reason = reason
	if rec.Reason == "" {
		rec.Reason = "paused by " + who.Name
	}
	if !e.store(r, rec, nil) {
		return Rollout{}, fmt.Errorf("configpush: pause %s: not stored", id)
	}
	e.recordChange(r, who, "paused")
	return r.snapshot(), nil
}

// Resume continues a paused or halted rollout. A rollout paused because its
// stage was healthy (plans without auto-advance) advances to the next stage.
// A halted rollout starts a fresh failure-ratio window for its current
// stage. Resuming a running rollout changes nothing.
func (e *Engine) Resume(ctx context.Context, id string, who audit.Actor) (Rollout, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, err := e.lookup(id)
	if err != nil {
		return Rollout{}, err
	}
	switch r.rec.State {
	case StateRunning:
		return r.snapshot(), nil
	case StatePaused, StateHalted:
	default:
		return Rollout{}, fmt.Errorf("%w: %s is %s", ErrRolloutState, id, r.rec.State)
	}
	if err := ctx.Err(); err != nil {
		return Rollout{}, err
	}
	if r.rec.State == StatePaused && r.rec.Awaiting {
		if !e.advance(r, who) {
			return Rollout{}, fmt.Errorf("configpush: resume %s: not stored", id)
		}
		e.evaluate(r)
		return r.snapshot(), nil
	}
	now := e.now().UTC()
	rec := r.rec
	halted := rec.State == StateHalted
	rec.State, rec.Reason, rec.Updated = StateRunning, "", now
	if halted {
		rec.HealthSince = now
		rec.HealthEpoch++
	}
	if !e.store(r, rec, nil) {
		return Rollout{}, fmt.Errorf("configpush: resume %s: not stored", id)
	}
	if halted {
		r.winApplied, r.winRejected = 0, 0
	}
	e.recordChange(r, who, "resumed")
	e.evaluate(r)
	return r.snapshot(), nil
}

// Abort ends an unfinished rollout: the terminals it reached fall back to
// the layer below (the previous version's settings), delivered under a new,
// higher version; the others never see it.
func (e *Engine) Abort(ctx context.Context, id, reason string, who audit.Actor) (Rollout, error) {
	var v violations
	checkText(&v, "reason", reason, MaxReason)
	if err := v.err(); err != nil {
		return Rollout{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	r, err := e.lookup(id)
	if err != nil {
		return Rollout{}, err
	}
	if r.rec.State.final() {
		return Rollout{}, fmt.Errorf("%w: %s is %s", ErrRolloutState, id, r.rec.State)
	}
	if err := ctx.Err(); err != nil {
		return Rollout{}, err
	}
	if reason == "" {
		reason = "aborted by " + who.Name
	}
	if !e.abortLocked(r, reason, who, false) {
		return Rollout{}, fmt.Errorf("configpush: abort %s: not stored", id)
	}
	return r.snapshot(), nil
}

// abortLocked aborts r: the terminals it reached fall back to the layer
// below under a new version. byGate marks the payment gate's automatic
// rollback, whose audit event (a rollout_halted webhook) is committed with
// the change, as a halt's is. It reports whether the change was stored.
// Called with mu held.
func (e *Engine) abortLocked(r *rollout, reason string, who audit.Actor, byGate bool) bool {
	now := e.now().UTC()
	fb := e.seq + 1
	rec := r.rec
	c := r.progress()
	rec.State, rec.Awaiting, rec.Updated = StateAborted, false, now
	rec.Reason = reason
	rec.Fallback, rec.FallbackTime, rec.Final = fb, now, &c
	ops := []op{seqOp(fb)}
	for tid := range r.acks {
		ops = append(ops, op{key: keyAck(rec.Version, tid), del: true})
	}
	what := "aborted"
	var evs []audit.Event
	if byGate {
		what = "rolled back by its payment gate"
		ev := changeEvent(r.id, rec, who, what)
		ev.Attributes[RolledBackByAttr] = "payment_gate"
		evs = []audit.Event{ev}
	}
	if !e.storeAudited(r, rec, ops, evs) {
		return false
	}
	e.seq = fb
	r.acks = nil
	sc := e.scopes[rec.Scope.key()]
	for i, x := range sc.stack {
		if x == r {
			sc.stack = append(sc.stack[:i:i], sc.stack[i+1:]...)
			break
		}
	}
	sc.aborted = append(sc.aborted, r)
	clear(e.memo)
	e.setEffective(e.termsIn(rec.Scope))
	e.logger.Info("rollout aborted", "rollout", r.id, "fallback_version", fb)
	if !byGate {
		e.recordChange(r, who, what)
	}
	return true
}

// Ack records a terminal's acknowledgement of a config version. Only the
// terminal's current version counts; an older one is accepted and ignored.
// The acknowledgement feeds the health of the rollout that delivered the
// version and is durable when Ack returns.
func (e *Engine) Ack(ctx context.Context, terminalID string, version uint64, result AckResult, detail string) error {
	var v violations
	if version == 0 {
		v.add("version", "is required")
	}
	if result != AckApplied && result != AckRejected {
		v.add("result", "must be APPLIED or REJECTED")
	}
	checkText(&v, "detail", detail, MaxAckDetail)
	if err := v.err(); err != nil {
		return err
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	t := e.terms[terminalID]
	cur := e.effs[terminalID]
	if t == nil || cur == nil {
		e.mu.Unlock()
		return ErrUnknownTerminal
	}
	if version > cur.Version {
		e.mu.Unlock()
		return fmt.Errorf("%w: version %d, current %d", ErrVersionNotIssued, version, cur.Version)
	}
	var evs []audit.Event
	if result == AckRejected && version == cur.Version {
		e.logger.Info("config rejected by terminal", "terminal", terminalID, "version", version, "detail", detail)
		evs = []audit.Event{rejectedEvent(t.ref, version, detail)}
	}
	// The acknowledgement of the terminal's current version counts for every
	// live rollout whose settings that version carries: the one whose stage
	// issued it, and those of the other layers the terminal sees. Counting
	// it for the issuing rollout alone froze a rollout for good once a
	// publish at another scope (or a rebind into its scope) gave the
	// terminal a newer version before it acknowledged.
	if version != cur.Version {
		e.mu.Unlock()
		return nil
	}
	type target struct {
		r     *rollout
		stage int
	}
	var targets []target
	for _, key := range chainKeys(t.ref) {
		sc := e.scopes[key]
		if sc == nil {
			continue
		}
		if r, c, ok := e.visible(sc, t); ok && r.acks != nil && e.live[r.rec.Version] == r {
			targets = append(targets, target{r, c})
		}
	}
	if len(targets) == 0 {
		e.mu.Unlock()
		if len(evs) == 0 {
			return nil
		}
		// No rollout counts it, but the rejection is still an event.
		return e.commit.submitAudited(nil, evs).waitCtx(ctx)
	}
	now := e.now().UTC()
	ops := make([]op, 0, len(targets))
	for _, tg := range targets {
		a := ackRec{Result: result, Detail: detail, Version: version, Time: now, Epoch: tg.r.rec.HealthEpoch}
		o, err := setOp(keyAck(tg.r.rec.Version, terminalID), a)
		if err != nil {
			e.mu.Unlock()
			return err
		}
		ops = append(ops, o)
	}
	for _, tg := range targets {
		if prev, ok := tg.r.acks[terminalID]; ok {
			tg.r.dropAck(terminalID, tg.stage, prev)
		}
		tg.r.addAck(terminalID, tg.stage, ackRec{Result: result, Detail: detail, Version: version, Time: now, Epoch: tg.r.rec.HealthEpoch})
	}
	req := e.commit.submitAudited(ops, evs)
	for _, tg := range targets {
		if tg.r.rec.State == StateRunning {
			e.evaluate(tg.r)
		}
	}
	e.mu.Unlock()
	return req.waitCtx(ctx)
}

// rejectedEvent is the audit event of a terminal rejecting its current
// config version, committed with the acknowledgement.
func rejectedEvent(t TerminalRef, version uint64, detail string) audit.Event {
	return audit.Event{
		Type: audit.ConfigRejected, Actor: "terminal:" + t.TerminalID,
		TerminalID: t.TerminalID, MerchantID: t.MerchantID, StoreID: t.StoreID,
		Message:    fmt.Sprintf("terminal %s rejected config version %d", t.TerminalID, version),
		Attributes: map[string]string{"version": strconv.FormatUint(version, 10), "detail": detail},
	}
}

// Rollout returns the rollout with the given ID.
func (e *Engine) Rollout(id string) (Rollout, error) {
	v, ok := parseRolloutID(id)
	if !ok {
		return Rollout{}, fmt.Errorf("%w: %q", ErrRolloutNotFound, id)
	}
	e.mu.Lock()
	if r := e.live[v]; r != nil {
		s := r.snapshot()
		e.mu.Unlock()
		return s, nil
	}
	e.mu.Unlock()
	return e.storedRollout(v, id)
}

// storedRollout reads the rollout of version v from storage; id names it in
// errors.
func (e *Engine) storedRollout(v uint64, id string) (Rollout, error) {
	b, err := e.db.Get(keyRollout(v))
	if err != nil {
		if err == store.ErrNotFound {
			return Rollout{}, fmt.Errorf("%w: %q", ErrRolloutNotFound, id)
		}
		return Rollout{}, err
	}
	var rec rolloutRec
	if err := decode(b, &rec); err != nil {
		return Rollout{}, err
	}
	var c counts
	if rec.Final != nil {
		c = *rec.Final
	}
	return rolloutFromRec(rec, c), nil
}

// ListRollouts returns up to limit rollouts, newest first, only those in
// state unless it is StateUnspecified, and a token for the next page ("" on
// the last page).
func (e *Engine) ListRollouts(ctx context.Context, state State, limit int, pageToken string) ([]Rollout, string, error) {
	return e.listRollouts(ctx, func(rec *rolloutRec) bool {
		return state == StateUnspecified || rec.State == state
	}, limit, pageToken)
}

// recordChange audits a rollout state or stage change.
func (e *Engine) recordChange(r *rollout, who audit.Actor, what string) {
	e.record(changeEvent(r.id, r.rec, who, what))
}

// RolledBackByAttr is the attribute of an ABORTED rollout's audit event
// that names what rolled it back on its own ("payment_gate"); an operator's
// abort has none.
const RolledBackByAttr = "rolled_back_by"

// changeEvent is the audit event of rollout id changing to rec.
func changeEvent(id string, rec rolloutRec, who audit.Actor, what string) audit.Event {
	return audit.Event{
		Type: audit.RolloutChanged, Actor: who.Name, Peer: who.Peer,
		MerchantID: rec.Scope.MerchantID, StoreID: rec.Scope.StoreID, TerminalID: rec.Scope.TerminalID,
		Message: fmt.Sprintf("rollout %s %s", id, what),
		Attributes: map[string]string{
			"rollout_id": id, "state": rec.State.String(),
			"stage": strconv.Itoa(rec.Stage + 1), "reason": rec.Reason,
		},
	}
}

// checkText validates a free-text field.
func checkText(v *violations, field, s string, n int) {
	switch {
	case !utf8.ValidString(s):
		v.add(field, "must be valid UTF-8")
	case utf8.RuneCountInString(s) > n:
		v.add(field, "must be at most %d characters", n)
	}
}

func stagesString(p []uint32) string {
	parts := make([]string, len(p))
	for i, x := range p {
		parts[i] = strconv.FormatUint(uint64(x), 10)
	}
	return strings.Join(parts, ",")
}
