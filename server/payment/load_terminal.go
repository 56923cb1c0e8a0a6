package payment

import (
	"errors"

	"github.com/posfleet/posfleet/server/store"
)

// terminal returns the decision loop's state of the terminal, read from
// disk on its first request since Open (see loadTerminal), so that Open
// reads nothing per terminal and memory holds only terminals that
// transacted since. pol is the terminal's policy. A terminal whose state
// could not be read is not kept: its next request reads it again.
func (e *Engine) terminal(id string, pol *Policy, now int64) (*termState, error) {
	st := e.st
	if ts := st.terms[id]; ts != nil && ts.loaded {
		return ts, nil
	}
	ts := st.term(id)
	if err := e.loadTerminal(ts, pol, now); err != nil {
		ts.batch = nil
		clear(ts.days)
		clear(ts.vel)
		return nil, err
	}
	ts.loaded = true
	return ts, nil
}

// loadTerminal reads a terminal's open batch and scans its ledger from the
// older of the batch's checkpoint and the start of the rebuild window: the
// scan completes the batch totals and restores the daily totals and the
// velocity windows. Idempotency entries are not read: those of before
// Open are looked up on disk (state.evictedUntil). The terminal has made
// no decision since Open, so everything of it on disk is durable.
func (e *Engine) loadTerminal(ts *termState, pol *Policy, now int64) error {
	window := now - int64(e.rebuildWindow())
	velocity := pol.VelocityLimit > 0 && pol.VelocityWindow > 0
	var approvals []int64
	var hashes []uint64
	err := e.db.View(func(txn *store.Txn) error {
		v, err := txn.Get(keyOpenBatch(ts.id))
		if errors.Is(err, store.ErrNotFound) {
			return nil // only terminals with an open batch have transactions
		}
		if err != nil {
			return err
		}
		b, err := decodeBatch(v)
		if err != nil {
			return err
		}
		err = scanTerminal(txn, ts.id, min(e.windowSeq, b.asOf+1), func(t *tx) error {
			if t.seq > b.asOf {
				b.add(t)
			}
			if t.decided < window || !t.approved() || (t.kind != TxKindSale && t.kind != TxKindPreauth) {
				return nil
			}
			if !t.reversed {
				ts.days[t.date] += t.dayAmount()
			}
			if velocity {
				approvals = append(approvals, t.decided)
				hashes = append(hashes, t.tokenHash)
			}
			return nil
		})
		if err != nil {
			return err
		}
		ts.batch = b
		return nil
	})
	if err != nil {
		return err
	}
	ts.pruneDays()
	// The ledger is in time order, so each card's ring is ascending.
	st := e.st
	for i, at := range approvals {
		ts.vel[hashes[i]] = append(ts.vel[hashes[i]], at)
		st.velQ.push(expiring{at: at, term: ts.idx, hash: hashes[i]})
	}
	return nil
}
