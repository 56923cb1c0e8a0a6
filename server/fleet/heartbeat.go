package fleet

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/posfleet/posfleet/server/store"
)

// maxRecentFaults is how many faults a terminal's view keeps.
const maxRecentFaults = 16

// HeartbeatResult is what a terminal learns from a heartbeat.
type HeartbeatResult struct {
	// ServerTime is the server's clock.
	ServerTime time.Time
	// ConfigVersion is the config version the terminal should run.
	ConfigVersion uint64
	// NextHeartbeat is the interval until the next heartbeat, with jitter.
	NextHeartbeat time.Duration
	// IdentityVersion is the current version of the terminal's identity.
	IdentityVersion uint64
	// Commands are the pending, unexpired remote commands; they are marked
	// delivered.
	Commands []Command
}

// Heartbeat records a terminal's status and faults in memory and returns
// what it should know. Status and faults reach storage with the next batch
// flush (there is no disk write per heartbeat). Faults are bounded per
// terminal: in distinct components (Options.FaultComponentsPerTerminal) and
// in stored events (Options.FaultBurst, Options.FaultsPerHour).
func (f *Fleet) Heartbeat(id string, st Status, faults []Fault) (HeartbeatResult, error) {
	f.mu.RLock()
	t := f.terms[id]
	var r *terminalRec
	var iv uint64
	if t != nil {
		r = t.rec
		iv = f.identityVersion(r)
	}
	f.mu.RUnlock()
	if t == nil {
		return HeartbeatResult{}, ErrTerminalNotFound
	}
	switch r.State {
	case StateRetired:
		return HeartbeatResult{}, ErrTerminalRetired
	case StateSuspended:
		return HeartbeatResult{}, ErrTerminalSuspended
	}
	now := f.now()
	t.liveMu.Lock()
	t.status, t.last, t.seen = st, now.UTC(), now.UTC()
	f.sample(t, st, now.UTC())
	if len(faults) > 0 {
		faults = f.foldComponents(t, faults)
		// Newest first, at most maxRecentFaults.
		recent := make([]Fault, 0, maxRecentFaults)
		for i := len(faults) - 1; i >= 0 && len(recent) < maxRecentFaults; i-- {
			recent = append(recent, faults[i])
		}
		for _, x := range t.faults {
			if len(recent) == maxRecentFaults {
				break
			}
			recent = append(recent, x)
		}
		t.faults = recent
	}
	cmds := t.deliver(now)
	wasDirty := t.dirty
	t.dirty = true
	t.liveMu.Unlock()

	// Only the terminal's fault budget is stored and counted.
	kept := 0
	for kept < len(faults) && f.faultLimit.Allow(r.ID, now) {
		kept++
	}
	if dropped := len(faults) - kept; dropped > 0 {
		f.faultsDropped.Add(uint64(dropped))
	}
	if !wasDirty || kept > 0 {
		f.pendMu.Lock()
		f.dirty[t] = struct{}{}
		for _, x := range faults[:kept] {
			k := faultKey{r.MerchantID, r.StoreID, x.Component}
			if _, ok := f.faultCounts[k]; !ok && len(f.faultCounts) >= f.opts.MaxFaultKeys {
				x.Component = OtherComponent
				k.component = OtherComponent
			}
			f.faultSeq++
			f.faults = append(f.faults, faultRec{Seq: f.faultSeq, TerminalID: r.ID, MerchantID: r.MerchantID, StoreID: r.StoreID, Fault: x, Received: now.UTC()})
			f.faultCounts[k]++
		}
		f.pendMu.Unlock()
	}
	return HeartbeatResult{
		ServerTime:      now,
		ConfigVersion:   f.desiredVersion(id),
		NextHeartbeat:   f.HeartbeatInterval(id),
		IdentityVersion: iv,
		Commands:        cmds,
	}, nil
}

// foldComponents returns faults with the components beyond t's first
// Options.FaultComponentsPerTerminal filed under OtherComponent; faults is
// not modified. t.liveMu is held.
func (f *Fleet) foldComponents(t *term, faults []Fault) []Fault {
	out := make([]Fault, len(faults))
	for i, x := range faults {
		if _, ok := t.components[x.Component]; !ok {
			if len(t.components) < f.opts.FaultComponentsPerTerminal {
				if t.components == nil {
					t.components = map[string]struct{}{}
				}
				t.components[x.Component] = struct{}{}
			} else {
				x.Component = OtherComponent
			}
		}
		out[i] = x
	}
	return out
}

// contactResolution is how often a terminal's latest contact is updated:
// calls within it of the previous update change nothing, so that a busy
// terminal's payments do not each touch shared state.
const contactResolution = time.Second

// touch records a contact with t now: any authenticated call counts, not
// only heartbeats. Like heartbeats it reaches storage with the next batch
// flush, never with a write of its own.
func (f *Fleet) touch(t *term) {
	now := f.now().UTC()
	t.liveMu.Lock()
	if now.Sub(t.seen) < contactResolution {
		t.liveMu.Unlock()
		return
	}
	t.seen = now
	wasDirty := t.dirty
	t.dirty = true
	t.liveMu.Unlock()
	if !wasDirty {
		f.pendMu.Lock()
		f.dirty[t] = struct{}{}
		f.pendMu.Unlock()
	}
}

// deliver returns t's unfinished, unexpired commands and marks them
// delivered. t.liveMu is held.
func (t *term) deliver(now time.Time) []Command {
	var out []Command
	for _, e := range t.cmds {
		if e.cmd.State.final() || !now.Before(e.cmd.Expires) {
			continue
		}
		if e.cmd.State == CommandPending {
			e.cmd.State, e.dirty, t.dirty = CommandDelivered, true, true
		}
		out = append(out, e.cmd)
	}
	return out
}

// PendingCommands returns terminal id's unfinished, unexpired commands,
// oldest first, and marks them delivered: it is meant for the channels that
// deliver commands (heartbeat responses, config streams). Expired commands
// are never returned.
func (f *Fleet) PendingCommands(id string) []Command {
	f.mu.RLock()
	t := f.terms[id]
	f.mu.RUnlock()
	if t == nil {
		return nil
	}
	t.liveMu.Lock()
	wasDirty := t.dirty
	cmds := t.deliver(f.now())
	dirty := t.dirty && !wasDirty
	t.liveMu.Unlock()
	if dirty {
		f.pendMu.Lock()
		f.dirty[t] = struct{}{}
		f.pendMu.Unlock()
	}
	return cmds
}

// flushLoop writes pending heartbeat state every FlushInterval until Close,
// and prunes old fault events hourly.
func (f *Fleet) flushLoop() {
	defer close(f.flushDone)
	tick := time.NewTicker(f.opts.FlushInterval)
	defer tick.Stop()
	lastPrune := time.Time{}
	for {
		select {
		case <-f.stop:
			return
		case <-tick.C:
		}
		// While disk space is low the pending state stays in memory (the
		// space monitor logs the condition) and goes out once it returns.
		if err := f.flush(false); err != nil && !errors.Is(err, store.ErrDiskLow) {
			f.logger.Error("fleet flush failed", "err", err)
		}
		if now := f.now(); now.Sub(lastPrune) >= time.Hour {
			lastPrune = now
			if err := f.pruneFaults(now.Add(-f.opts.FaultRetention)); err != nil && !errors.Is(err, store.ErrDiskLow) {
				f.logger.Error("fleet fault pruning failed", "err", err)
			}
		}
	}
}

// Flush writes pending heartbeat status, faults, command deliveries and
// expiries now, in batched commits.
func (f *Fleet) Flush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return f.flush(false)
}

// flushBatch is how many records one commit writes.
const flushBatch = 1000

type kv struct{ k, v []byte }

// flush writes the pending state. Unless reserved, it refuses with
// store.ErrDiskLow while disk space is low, keeping the state pending;
// reserved writes regardless (at Close).
func (f *Fleet) flush(reserved bool) error {
	// Checked before the pending state is taken, so that a refusal keeps it.
	update := f.db.UpdateReserved
	if !reserved {
		if err := f.db.CheckSpace(); err != nil {
			return err
		}
		update = f.db.Update
	}
	f.pendMu.Lock()
	dirty, faults := f.dirty, f.faults
	f.dirty, f.faults = map[*term]struct{}{}, nil
	cmdTerms := make([]*term, 0, len(f.cmdTerms))
	for t := range f.cmdTerms {
		cmdTerms = append(cmdTerms, t)
	}
	f.pendMu.Unlock()

	if err := f.flushCommands(update, cmdTerms); err != nil {
		return err
	}
	// Status history samples go first, so that a heartbeat record never
	// names a sample that an earlier commit did not write.
	var samples, writes []kv
	var sampled []termSeq
	for t := range dirty {
		t.liveMu.Lock()
		rec := heartbeatRec{Status: t.status, Last: t.last, Faults: t.faults, Seen: t.seen, LastSample: t.lastSample}
		pending := slices.Clone(t.samples)
		t.dirty = false
		t.liveMu.Unlock()
		if rec.Last.IsZero() && rec.Seen.IsZero() {
			continue
		}
		v, err := encode(rec)
		if err != nil {
			return err
		}
		f.mu.RLock()
		id := t.rec.ID
		f.mu.RUnlock()
		writes = append(writes, kv{keyOf(prefixHeartbeat, id), v})
		if len(pending) > 0 {
			w, err := f.sampleWrites(id, pending)
			if err != nil {
				return err
			}
			samples = append(samples, w...)
			sampled = append(sampled, termSeq{t, pending[len(pending)-1].Seq})
		}
	}
	writes = append(samples, writes...)
	for _, x := range faults {
		v, err := encode(&x)
		if err != nil {
			return err
		}
		writes = append(writes, kv{store.AppendUint64(append([]byte{}, prefixFault...), x.Seq), v})
	}
	if err := f.write(update, writes); err != nil {
		return err
	}
	for _, x := range sampled {
		x.t.liveMu.Lock()
		x.t.samples = slices.DeleteFunc(x.t.samples, func(s StatusSample) bool { return s.Seq <= x.seq })
		x.t.liveMu.Unlock()
	}
	return nil
}

// termSeq names a terminal's status samples up to seq.
type termSeq struct {
	t   *term
	seq uint64
}

// flushCommands writes command deliveries and expiries of the terminals in
// cmdTerms and forgets finished commands.
func (f *Fleet) flushCommands(update func(func(*store.Txn) error) error, cmdTerms []*term) error {
	f.cmdMu.Lock()
	defer f.cmdMu.Unlock()
	now := f.now()
	var writes []kv
	var done []*term // terminals whose commands are all finished
	for _, t := range cmdTerms {
		t.liveMu.Lock()
		keep := t.cmds[:0]
		for _, e := range t.cmds {
			if !e.cmd.State.final() && !now.Before(e.cmd.Expires) {
				e.cmd.State, e.dirty = CommandExpired, true
			}
			if e.dirty {
				v, err := encode(&e.cmd)
				if err != nil {
					t.liveMu.Unlock()
					return err
				}
				writes = append(writes, kv{commandKey(e.cmd.ID), v})
				e.dirty = false
			}
			if !e.cmd.State.final() {
				keep = append(keep, e)
			}
		}
		clear(t.cmds[len(keep):])
		t.cmds = keep
		if len(keep) == 0 {
			done = append(done, t)
		}
		t.liveMu.Unlock()
	}
	if len(done) > 0 {
		f.pendMu.Lock()
		for _, t := range done {
			t.liveMu.Lock()
			if len(t.cmds) == 0 {
				delete(f.cmdTerms, t)
			}
			t.liveMu.Unlock()
		}
		f.pendMu.Unlock()
	}
	return f.write(update, writes)
}

// write stores writes with update in commits of at most flushBatch records.
func (f *Fleet) write(update func(func(*store.Txn) error) error, writes []kv) error {
	for len(writes) > 0 {
		n := min(len(writes), flushBatch)
		batch := writes[:n]
		writes = writes[n:]
		err := update(func(tx *store.Txn) error {
			for _, w := range batch {
				if err := tx.Set(w.k, w.v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// pruneFaults deletes fault events older than cutoff and takes them out of
// the report's counts, a batch per transaction.
func (f *Fleet) pruneFaults(cutoff time.Time) error {
	for {
		n, err := f.pruneFaultBatch(cutoff)
		if err != nil || n < flushBatch {
			return err
		}
	}
}

// pruneFaultBatch prunes up to flushBatch of the oldest faults older than
// cutoff and returns how many.
func (f *Fleet) pruneFaultBatch(cutoff time.Time) (int, error) {
	type old struct {
		key []byte
		fk  faultKey
	}
	var olds []old
	err := f.db.View(func(tx *store.Txn) error {
		return tx.Iterate(prefixFault, nil, func(k, v []byte) error {
			var r faultRec
			if err := decode(v, &r); err != nil {
				return nil // unreadable entries are left for inspection
			}
			if r.Received.After(cutoff) || len(olds) >= flushBatch {
				// Fault keys are ordered by arrival; stop at the first
				// recent one (or at a batch).
				return store.ErrStop
			}
			olds = append(olds, old{append([]byte{}, k...), faultKey{r.MerchantID, r.StoreID, r.Fault.Component}})
			return nil
		})
	})
	if err != nil || len(olds) == 0 {
		return 0, err
	}
	err = f.db.Update(func(tx *store.Txn) error {
		for _, o := range olds {
			if err := tx.Delete(o.key); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	f.pendMu.Lock()
	for _, o := range olds {
		// A count that reaches zero is deleted: components are chosen by
		// terminals, and the map must not keep every one ever reported.
		if n := f.faultCounts[o.fk]; n > 1 {
			f.faultCounts[o.fk] = n - 1
		} else {
			delete(f.faultCounts, o.fk)
		}
	}
	f.pendMu.Unlock()
	return len(olds), nil
}
