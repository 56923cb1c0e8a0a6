package payment

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/posfleet/posfleet/server/store"
)

// rebuild loads the decision loop's state from the store: the open batch of
// every terminal, then the ledger of the retention period (at least 26
// hours, so that every store's current business date is covered) newest
// first, which restores daily totals, velocity windows and the recent
// transactions, then the idempotency records and tombstones of the
// retention period. Expired idempotency records and tombstones are deleted.
// The work is bounded by the retention period, not by the ledger's size.
func (e *Engine) rebuild(ctx context.Context) (*state, error) {
	st := newState()
	now := e.clock().UnixNano()
	cutoff := now - int64(e.opts.Retention)
	window := now - int64(max(e.opts.Retention, 26*time.Hour))

	type vel struct {
		ts   *termState
		hash uint64
		at   int64
	}
	var approvals []vel // newest first
	var recent []*tx    // newest first
	type queued struct {
		at   int64
		ts   *termState
		key  string
		tomb bool
	}
	var live []queued
	var expired [][]byte

	err := e.db.View(func(txn *store.Txn) error {
		err := txn.Iterate(prefixOpenBatch, nil, func(k, v []byte) error {
			b, err := decodeBatch(v)
			if err != nil {
				return fmt.Errorf("%w (key %q)", err, k)
			}
			st.term(b.terminal).batch = b
			st.last = max(st.last, b.openTime)
			return nil
		})
		if err != nil {
			return err
		}
		first := true
		err = txn.IterateReverse(prefixTx, nil, func(k, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			t, err := decodeTx(v)
			if err != nil {
				return fmt.Errorf("%w (key %x)", err, k)
			}
			if first {
				first = false
				st.nextSeq = t.seq + 1
				st.last = max(st.last, t.decided, t.reversalTime)
			}
			if t.decided < window {
				return store.ErrStop
			}
			ts := st.term(t.terminal)
			if t.approved() && t.kind != TxKindRefund {
				if !t.reversed {
					ts.days[t.date] += t.amount
				}
				approvals = append(approvals, vel{ts: ts, hash: t.tokenHash, at: t.decided})
			}
			if len(recent) < e.opts.MaxEntries && t.decided >= cutoff {
				t.touched = t.decided
				recent = append(recent, t)
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = txn.Iterate(prefixRequest, nil, func(k, v []byte) error {
			en, err := decodeEntry(v)
			if err != nil {
				return fmt.Errorf("%w (key %q)", err, k)
			}
			terminal, requestID, ok := splitTermKey(k, prefixRequest)
			if !ok {
				return fmt.Errorf("payment: malformed request key %q", k)
			}
			if en.created < cutoff {
				expired = append(expired, bytes.Clone(k))
				return nil
			}
			st.last = max(st.last, en.created)
			ts := st.term(terminal)
			ts.entries[requestID] = en
			live = append(live, queued{at: en.created, ts: ts, key: requestID})
			return nil
		})
		if err != nil {
			return err
		}
		return txn.Iterate(prefixTombstone, nil, func(k, v []byte) error {
			created, err := decodeTombstone(v)
			if err != nil {
				return fmt.Errorf("%w (key %q)", err, k)
			}
			terminal, requestID, ok := splitTermKey(k, prefixTombstone)
			if !ok {
				return fmt.Errorf("payment: malformed tombstone key %q", k)
			}
			if created < cutoff {
				expired = append(expired, bytes.Clone(k))
				return nil
			}
			st.last = max(st.last, created)
			ts := st.term(terminal)
			ts.tombs[requestID] = &tomb{created: created}
			live = append(live, queued{at: created, ts: ts, key: requestID, tomb: true})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("payment: rebuild state: %w", err)
	}

	for i := len(approvals) - 1; i >= 0; i-- {
		a := approvals[i]
		a.ts.vel[a.hash] = append(a.ts.vel[a.hash], a.at)
		st.velQ.push(expiring{at: a.at, ts: a.ts, hash: a.hash})
	}
	for _, ts := range st.terms {
		ts.pruneDays()
	}
	for i := len(recent) - 1; i >= 0; i-- {
		t := recent[i]
		st.txs[t.seq] = t
		st.txQ.push(expiring{at: t.touched, seq: t.seq})
	}
	slices.SortFunc(live, func(a, b queued) int {
		switch {
		case a.at < b.at:
			return -1
		case a.at > b.at:
			return 1
		}
		return 0
	})
	if over := len(live) - e.opts.MaxEntries; over > 0 {
		// Keep the newest in memory; the others stay on disk.
		for _, q := range live[:over] {
			if q.tomb {
				delete(q.ts.tombs, q.key)
			} else {
				delete(q.ts.entries, q.key)
			}
		}
		st.evictedUntil = live[over-1].at
		live = live[over:]
	}
	for _, q := range live {
		st.entryQ.push(expiring{at: q.at, ts: q.ts, key: q.key, tomb: q.tomb})
	}
	st.entryCount = len(live)

	if err := e.deleteKeys(expired); err != nil {
		return nil, err
	}
	return st, nil
}

// deleteKeys deletes keys in chunks that fit one store transaction.
func (e *Engine) deleteKeys(keys [][]byte) error {
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		chunk := keys[:n]
		keys = keys[n:]
		err := e.db.Update(func(tx *store.Txn) error {
			for _, k := range chunk {
				if err := tx.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("payment: delete expired records: %w", err)
		}
	}
	return nil
}

// splitTermKey splits "<prefix><terminal>/<request_id>".
func splitTermKey(k, prefix []byte) (terminal, requestID string, ok bool) {
	rest := k[len(prefix):]
	i := bytes.IndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return string(rest[:i]), string(rest[i+1:]), true
}
