package configpush

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store"
)

// ErrVersionNotFound: no layer was published under that version (it may be
// a stage, fallback or rebind version, which carry no layer of their own).
var ErrVersionNotFound = errors.New("configpush: no layer was published under that version")

// Layer returns the current layer of scope: the rollout of its newest
// publish that was not aborted. ok is false when nothing is published
// there.
func (e *Engine) Layer(s Scope) (r Rollout, ok bool, err error) {
	var v violations
	s.validate(&v)
	if err := v.err(); err != nil {
		return Rollout{}, false, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.checkScope(s); err != nil {
		return Rollout{}, false, err
	}
	if cur := e.currentLayer(s); cur != nil {
		return cur.snapshot(), true, nil
	}
	return Rollout{}, false, nil
}

// History returns up to limit versions published at scope s, newest first,
// each with its layer and rollout, and a token for the next page ("" on the
// last page).
func (e *Engine) History(ctx context.Context, s Scope, limit int, pageToken string) ([]Rollout, string, error) {
	var v violations
	s.validate(&v)
	if err := v.err(); err != nil {
		return nil, "", err
	}
	return e.listRollouts(ctx, func(rec *rolloutRec) bool { return rec.Scope == s }, limit, pageToken)
}

// version returns the rollout that published version, live or stored.
func (e *Engine) version(v uint64) (Rollout, error) {
	r, err := e.Rollout(RolloutID(v))
	if errors.Is(err, ErrRolloutNotFound) {
		return Rollout{}, fmt.Errorf("%w: %d", ErrVersionNotFound, v)
	}
	return r, err
}

// DiffVersions returns the layers published under versions from and to and
// the fields that differ between them. Version 0 stands for no layer.
func (e *Engine) DiffVersions(ctx context.Context, from, to uint64) (a, b Rollout, changes []Change, err error) {
	if err := ctx.Err(); err != nil {
		return a, b, nil, err
	}
	if from != 0 {
		if a, err = e.version(from); err != nil {
			return a, b, nil, err
		}
	}
	if to != 0 {
		if b, err = e.version(to); err != nil {
			return a, b, nil, err
		}
	}
	return a, b, Diff(a.Settings, b.Settings), nil
}

// Source says where one value of a terminal's effective config comes from.
type Source struct {
	// Field is the protocol name, "extra.<key>" for a free-form key.
	Field string
	// Value is the display value (as in Change).
	Value string
	// Origin is OriginLayer, OriginStore or OriginDefault.
	Origin Origin
	// Scope, Version and RolloutID name the layer, for OriginLayer.
	Scope     Scope
	Version   uint64
	RolloutID string
}

// Origin is the kind of source of an effective value.
type Origin int32

// Origins of effective values (protocol ConfigValueOrigin numbers).
const (
	OriginUnspecified Origin = iota
	// OriginLayer: a published layer sets it.
	OriginLayer
	// OriginStore: the store's own record (its time zone).
	OriginStore
	// OriginDefault: the server default.
	OriginDefault
)

// Sources returns, for every field of terminalID's effective config, the
// layer (or store record, or server default) its value comes from.
func (e *Engine) Sources(terminalID string) ([]Source, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.terms[terminalID]
	if t == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTerminal, terminalID)
	}
	var layers [4]*rollout
	for i, key := range chainKeys(t.ref) {
		if sc := e.scopes[key]; sc != nil {
			layers[i], _, _ = e.visible(sc, t)
		}
	}
	eff := merge(chainLayers(layers, t.ref.TimeZone))
	byField := map[string]Source{}
	extra := map[string]Source{}
	for i, r := range layers {
		if i == int(LevelStore) && t.ref.TimeZone != "" {
			byField["time_zone"] = Source{Field: "time_zone", Origin: OriginStore}
		}
		if r == nil {
			continue
		}
		src := Source{Origin: OriginLayer, Scope: r.rec.Scope, Version: r.rec.Version, RolloutID: r.id}
		for _, fd := range fields {
			if _, ok := fd.text(r.rec.Settings); ok {
				src.Field = fd.name
				byField[fd.name] = src
			}
		}
		for k, val := range r.rec.Settings.Extra {
			src.Field = "extra." + k
			if val == "" {
				delete(extra, k)
			} else {
				extra[k] = src
			}
		}
	}
	out := make([]Source, 0, len(fields)+len(extra))
	for _, fd := range fields {
		src, ok := byField[fd.name]
		if !ok {
			src = Source{Field: fd.name, Origin: OriginDefault}
		}
		src.Value, _ = fd.text(eff)
		out = append(out, src)
	}
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		src := extra[k]
		src.Value = extraText(eff.Extra[k])
		out = append(out, src)
	}
	return out, nil
}

// RollbackRequest asks to publish an earlier layer of a scope again.
type RollbackRequest struct {
	Scope Scope
	// ToVersion is the version whose layer to restore; 0 means the one
	// published before the scope's current layer (none: the scope's layer
	// is removed).
	ToVersion   uint64
	Plan        Plan
	Description string
}

// Rollback publishes an earlier layer of a scope as a new version, rolled
// out like any publish (it can be staged, halted and aborted). The earlier
// layer replaces the current one as a whole, so no clear list is needed;
// limits are checked against the merchants' currencies again.
func (e *Engine) Rollback(ctx context.Context, req RollbackRequest, who audit.Actor) (Rollout, error) {
	var v violations
	req.Scope.validate(&v)
	req.Plan.validate(&v)
	checkText(&v, "description", req.Description, MaxDescription)
	if err := v.err(); err != nil {
		return Rollout{}, err
	}
	plan := req.Plan.normalize()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return Rollout{}, ErrClosed
	}
	if err := e.checkScope(req.Scope); err != nil {
		return Rollout{}, err
	}
	cur := e.currentLayer(req.Scope)
	if cur == nil {
		return Rollout{}, fmt.Errorf("%w: nothing is published at %s", ErrRolloutState, req.Scope)
	}
	target, err := e.rollbackTarget(ctx, req.Scope, cur.rec.Version, req.ToVersion)
	if err != nil {
		return Rollout{}, err
	}
	layer := &Settings{}
	if target != nil {
		layer = target.Settings.Clone()
	}
	if len(Diff(cur.rec.Settings, layer)) == 0 {
		v.add("to_version", "the earlier layer equals the current layer (version %d): nothing to roll back", cur.rec.Version)
	}
	e.checkCurrencies(req.Scope, layer, &v)
	if err := v.err(); err != nil {
		return Rollout{}, err
	}
	if req.Description == "" {
		if target != nil {
			req.Description = fmt.Sprintf("rollback of version %d to version %d", cur.rec.Version, target.Version)
		} else {
			req.Description = fmt.Sprintf("rollback of version %d to no layer", cur.rec.Version)
		}
	}
	return e.publishLocked(req.Scope, layer, plan, req.Description, who, cur, cur.rec.Version)
}

// rollbackTarget returns the stored record to roll back to: version to if
// given (it must be a layer of the scope other than the current one), else
// the newest non-aborted layer of the scope older than current (nil: none).
// Called with mu held.
func (e *Engine) rollbackTarget(ctx context.Context, s Scope, current, to uint64) (*rolloutRec, error) {
	if to != 0 {
		var r Rollout
		var err error
		if lr := e.live[to]; lr != nil {
			r = lr.snapshot()
		} else if r, err = e.storedRollout(to, RolloutID(to)); errors.Is(err, ErrRolloutNotFound) {
			return nil, fmt.Errorf("%w: %d", ErrVersionNotFound, to)
		} else if err != nil {
			return nil, err
		}
		if r.Scope != s {
			return nil, &ValidationError{Violations: []Violation{{Field: "to_version", Reason: fmt.Sprintf("version %d was published at %s, not %s", to, r.Scope, s)}}}
		}
		if to == current {
			return nil, &ValidationError{Violations: []Violation{{Field: "to_version", Reason: fmt.Sprintf("version %d is the current layer", to)}}}
		}
		return &rolloutRec{Version: r.Version, Settings: r.Settings}, nil
	}
	var found *rolloutRec
	err := e.db.View(func(tx *store.Txn) error {
		return tx.IterateReverse(prefixRollout, keyRollout(current-1), func(_, val []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			var rec rolloutRec
			if err := decode(val, &rec); err != nil {
				return err
			}
			if rec.Scope == s && rec.State != StateAborted {
				found = &rec
				return store.ErrStop
			}
			return nil
		})
	})
	return found, err
}

// Advance moves a running or paused rollout to its next stage now, whatever
// the health of the current one (an operator's decision, audited). A halted
// rollout must be resumed first; the last stage cannot be advanced.
func (e *Engine) Advance(ctx context.Context, id string, who audit.Actor) (Rollout, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, err := e.lookup(id)
	if err != nil {
		return Rollout{}, err
	}
	switch {
	case r.rec.State != StateRunning && r.rec.State != StatePaused:
		return Rollout{}, fmt.Errorf("%w: %s is %s", ErrRolloutState, id, r.rec.State)
	case r.rec.Stage == len(r.rec.Plan.StagePercents)-1:
		return Rollout{}, fmt.Errorf("%w: %s is at its last stage", ErrRolloutState, id)
	}
	if err := ctx.Err(); err != nil {
		return Rollout{}, err
	}
	if !e.advance(r, who) {
		return Rollout{}, fmt.Errorf("configpush: advance %s: not stored", id)
	}
	e.evaluate(r)
	return r.snapshot(), nil
}

// listRollouts pages through stored rollouts newest first, keeping those
// keep accepts.
func (e *Engine) listRollouts(ctx context.Context, keep func(*rolloutRec) bool, limit int, pageToken string) ([]Rollout, string, error) {
	if limit <= 0 {
		limit = 100
	}
	var start []byte
	if pageToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(pageToken)
		if err != nil || len(b) != 8 || binary.BigEndian.Uint64(b) == 0 {
			return nil, "", ErrBadPageToken
		}
		start = keyRollout(binary.BigEndian.Uint64(b) - 1)
	}
	var recs []rolloutRec
	var next string
	err := e.db.View(func(tx *store.Txn) error {
		return tx.IterateReverse(prefixRollout, start, func(_, val []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			var rec rolloutRec
			if err := decode(val, &rec); err != nil {
				return err
			}
			if !keep(&rec) {
				return nil
			}
			if len(recs) == limit {
				next = base64.RawURLEncoding.EncodeToString(store.AppendUint64(nil, recs[len(recs)-1].Version))
				return store.ErrStop
			}
			recs = append(recs, rec)
			return nil
		})
	})
	if err != nil {
		return nil, "", err
	}
	out := make([]Rollout, 0, len(recs))
	e.mu.Lock()
	for _, rec := range recs {
		if r := e.live[rec.Version]; r != nil {
			out = append(out, r.snapshot())
			continue
		}
		var c counts
		if rec.Final != nil {
			c = *rec.Final
		}
		out = append(out, rolloutFromRec(rec, c))
	}
	e.mu.Unlock()
	return out, next, nil
}
