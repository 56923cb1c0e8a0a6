package payment

import (
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store"
)

// writer is the group-commit writer: it writes each commit the decision loop
// hands over in one synced store transaction and only then releases the
// answers of its decisions. After a failed commit it writes nothing more and
// fails every later decision: the decision loop's memory may hold effects
// of the failed commit, so deciding on would approve against state that is
// not on disk.
//
// A commit's answers also wait for the watermark to record it (see
// marker), which runs beside the next commit's write.
func (e *Engine) writer() {
	defer close(e.writerDone)
	// Unbuffered: a commit is handed over only once the one before is
	// marked.
	written := make(chan writtenCommit)
	markerDone := make(chan struct{})
	go e.marker(written, markerDone)
	for c := range e.commits {
		err := e.write(c)
		// Let the decision loop hand over the next commit while this one
		// is marked and its answers go out.
		e.idle <- struct{}{}
		written <- writtenCommit{c, err}
	}
	close(written)
	<-markerDone
}

// write commits c; it returns ErrUnavailable when c failed or an earlier
// commit did.
func (e *Engine) write(c *commit) error {
	if e.failed.Load() {
		return ErrUnavailable
	}
	var evs []audit.Event
	for _, o := range c.ops {
		evs = append(evs, o.audits...)
	}
	if len(c.writes) > 0 || len(evs) > 0 {
		if e.opts.commitWrites != nil {
			e.opts.commitWrites(len(c.writes))
		}
		// The audit events of the decisions are committed with them, so
		// that no acknowledged batch close lacks its event after a crash.
		evs = e.audit.Prepare(evs)
		start := time.Now()
		err := e.db.UpdateReserved(func(tx *store.Txn) error {
			if err := applyWrites(tx, c.writes); err != nil {
				return err
			}
			if err := e.audit.Stage(tx, evs); err != nil {
				return err
			}
			if e.opts.commitHook != nil {
				return e.opts.commitHook()
			}
			return nil
		})
		if err == nil && e.opts.syncHook != nil {
			err = e.opts.syncHook()
		}
		if err != nil {
			e.audit.Abandon(evs)
			e.fail(err)
			e.logger.Error("payment commit failed; engine stops deciding until reopened",
				"err", err, "decisions", c.decisions, "writes", len(c.writes))
			return ErrUnavailable
		}
		if e.opts.OnCommit != nil {
			e.opts.OnCommit(c.decisions, time.Since(start))
		}
		e.audit.Committed(evs)
		e.commitCount.Add(1)
		e.decisionCount.Add(uint64(c.decisions))
		if n := uint64(c.decisions); n > e.maxSize.Load() {
			e.maxSize.Store(n)
		}
	}
	return nil
}

// release answers the commit's requests: with their decisions (and their
// audit events, committed with them), or with err when the commit failed.
func (e *Engine) release(c *commit, err error) {
	for _, o := range c.ops {
		if err != nil {
			o.err = err
		}
		o.done <- struct{}{}
	}
}

// applyWrites stages ws in tx, in order.
func applyWrites(tx *store.Txn, ws []write) error {
	for i := range ws {
		w := &ws[i]
		var err error
		switch {
		case w.del:
			err = tx.Delete(w.key)
		case w.ttl > 0:
			err = tx.SetWithTTL(w.key, w.value, w.ttl)
		default:
			err = tx.Set(w.key, w.value)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
