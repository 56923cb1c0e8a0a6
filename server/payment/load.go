package payment

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/posfleet/posfleet/server/store"
)

// loader gathers the decision loop's state from the store at Open, one
// record kind at a time (see Engine.rebuild). Its methods run inside one
// store.View, in the order rebuild calls them; finish then orders what
// they gathered into the state's expiry queues.
type loader struct {
	e   *Engine
	st  *state
	now int64
	// cutoff starts the retention period; window starts the rebuild
	// window (the retention period, at least 26 hours, so that every
	// store's current business date is covered).
	cutoff, window int64

	// approvals, recent and live are gathered unordered and queued by
	// time in finish.
	approvals, recent, live []timed
	// fixes delete expired idempotency records and tombstones, and rewrite
	// live ones written before such records expired on their own with
	// their expiry.
	fixes []write
	// writeIndexedSince is set when the request index start is to be
	// recorded.
	writeIndexedSince bool

	in   *integrity
	last *chunk
	// windowSeq is the first sequence number of the window.
	windowSeq uint64
	// listed counts the transactions the chunks from windowSeq on list,
	// scanned those found in the terminals' ledgers.
	listed, scanned uint64
}

// timed is an item of the state's expiry queues, gathered at Open.
type timed struct {
	at   int64
	ts   *termState
	key  reqKey
	tomb bool
	hash uint64
	seq  uint64
}

func (e *Engine) newLoader() *loader {
	now := e.clock().UnixNano()
	return &loader{
		e:      e,
		st:     newState(),
		now:    now,
		cutoff: now - int64(e.opts.Retention),
		window: now - int64(e.rebuildWindow()),
	}
}

// rebuildWindow is how far back the ledger is read at Open.
func (e *Engine) rebuildWindow() time.Duration { return max(e.opts.Retention, 26*time.Hour) }

func (l *loader) expire(k []byte) {
	l.fixes = append(l.fixes, write{key: bytes.Clone(k), del: true})
}

func (l *loader) migrate(k, v []byte, created int64, exp time.Time) {
	if exp.IsZero() {
		l.fixes = append(l.fixes, write{key: bytes.Clone(k), value: bytes.Clone(v), ttl: l.e.keyTTL(created, l.now)})
	}
}

// openBatches loads every terminal's open batch (pay/bo/).
func (l *loader) openBatches(txn *store.Txn) error {
	return txn.Iterate(prefixOpenBatch, nil, func(k, v []byte) error {
		b, err := decodeBatch(v)
		if err != nil {
			return fmt.Errorf("%w (key %q)", err, k)
		}
		l.st.term(b.terminal).batch = b
		l.st.last = max(l.st.last, b.openTime)
		return nil
	})
}

// merchantTerminals loads which terminals transacted for each merchant
// (pay/mt/).
func (l *loader) merchantTerminals(txn *store.Txn) error {
	st := l.st
	return txn.Iterate(prefixMerchTerm, nil, func(k, _ []byte) error {
		merchant, terminal, ok := splitTermKey(k, prefixMerchTerm)
		if !ok {
			return fmt.Errorf("payment: malformed key %q", k)
		}
		if st.merchTerms[merchant] == nil {
			st.merchTerms[merchant] = map[string]bool{}
		}
		st.merchTerms[merchant][terminal] = true
		return nil
	})
}

// chain reads the integrity records, the last commit chunk and the request
// index start, and checks the chain of commit chunks over the window,
// which holds every commit of the last day and more: the write-ahead log
// holds less.
func (l *loader) chain(txn *store.Txn) error {
	st := l.st
	var err error
	if l.in, err = readIntegrity(txn); err != nil {
		return err
	}
	if l.last, err = lastChunk(txn); err != nil {
		return err
	}
	if l.last != nil {
		st.nextSeq = l.last.next()
		st.last = max(st.last, l.last.to)
	}
	switch v, err := txn.Get(keyIndexedSince); {
	case err == nil:
		if st.indexedSince, err = decodeIndexedSince(v); err != nil {
			return fmt.Errorf("%w (key %q)", err, keyIndexedSince)
		}
	case !errors.Is(err, store.ErrNotFound):
		return err
	case l.last != nil:
		// A ledger written before request indexes: its entries of the
		// retention period are found by scanning.
		st.indexedSince, l.writeIndexedSince = l.now, true
	default:
		l.writeIndexedSince = true
	}
	if l.windowSeq, err = firstSeqAt(txn, l.window); err != nil {
		return err
	}
	_, err = checkChain(txn, l.windowSeq, func(c *chunk) error {
		if c.first >= l.windowSeq {
			l.listed += uint64(len(c.terminals))
		}
		return nil
	})
	return err
}

// ledger scans the ledger (pay/tx/) of every terminal with an open batch
// from the older of its checkpoint and the start of the window: the scan
// completes the batch totals and restores daily totals, velocity windows,
// recent transactions and the idempotency entries of Authorize and Refund.
func (l *loader) ledger(ctx context.Context, txn *store.Txn) error {
	st := l.st
	txCutoff := l.now - int64(l.e.opts.TxCacheTTL)
	for _, ts := range st.terms {
		b := ts.batch
		if b == nil {
			continue // only terminals with an open batch have transactions
		}
		pol, perr := l.e.dir.Policy(ts.id)
		velocity := perr == nil && pol.VelocityLimit > 0 && pol.VelocityWindow > 0
		err := scanTerminal(txn, ts.id, min(l.windowSeq, b.asOf+1), func(t *tx) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if t.seq >= l.windowSeq {
				l.scanned++
			}
			if t.seq > b.asOf {
				b.add(t)
			}
			if t.decided < l.window {
				return nil
			}
			st.last = max(st.last, t.reversalTime)
			if t.approved() && t.kind != TxKindRefund {
				if !t.reversed {
					ts.days[t.date] += t.amount
				}
				if velocity {
					l.approvals = append(l.approvals, timed{at: t.decided, ts: ts, hash: t.tokenHash})
				}
			}
			if t.decided >= txCutoff {
				st.txs[t.seq] = cachedTx{rec: t.encode(), touched: t.decided}
				l.recent = append(l.recent, timed{at: t.decided, seq: t.seq})
			}
			if t.decided >= l.cutoff {
				if en := t.entry(); en != nil {
					k := st.key(t.requestID)
					ts.entries[k] = en.entryRec
					l.live = append(l.live, timed{at: en.created, ts: ts, key: k})
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		ts.pruneDays()
	}
	return nil
}

// requests loads the idempotency records of Reverse and CloseBatch
// (pay/rq/) of the retention period and expires older ones.
func (l *loader) requests(txn *store.Txn) error {
	st := l.st
	return txn.IterateExpiry(prefixRequest, func(k, v []byte, exp time.Time) error {
		en, err := decodeEntry(v)
		if err != nil {
			return fmt.Errorf("%w (key %q)", err, k)
		}
		terminal, requestID, ok := splitTermKey(k, prefixRequest)
		if !ok {
			return fmt.Errorf("payment: malformed request key %q", k)
		}
		if en.created < l.cutoff {
			l.expire(k)
			return nil
		}
		l.migrate(k, v, en.created, exp)
		st.last = max(st.last, en.created)
		ts := st.term(terminal)
		rk := st.key(requestID)
		ts.entries[rk] = en.entryRec
		if en.close != nil {
			ts.closes[rk] = en.close
		}
		l.live = append(l.live, timed{at: en.created, ts: ts, key: rk})
		return nil
	})
}

// requestIndexes expires the request indexes (pay/ri/) older than the
// retention period; the entries of the others came from the ledger.
func (l *loader) requestIndexes(txn *store.Txn) error {
	return txn.IterateExpiry(prefixReqIndex, func(k, v []byte, exp time.Time) error {
		created, _, err := decodeReqIndex(v)
		if err != nil {
			return fmt.Errorf("%w (key %q)", err, k)
		}
		if created < l.cutoff {
			l.expire(k)
		} else {
			l.migrate(k, v, created, exp)
		}
		return nil
	})
}

// tombstones loads the tombstones (pay/ts/) of the retention period and
// expires older ones.
func (l *loader) tombstones(txn *store.Txn) error {
	st := l.st
	return txn.IterateExpiry(prefixTombstone, func(k, v []byte, exp time.Time) error {
		created, err := decodeTombstone(v)
		if err != nil {
			return fmt.Errorf("%w (key %q)", err, k)
		}
		terminal, requestID, ok := splitTermKey(k, prefixTombstone)
		if !ok {
			return fmt.Errorf("payment: malformed tombstone key %q", k)
		}
		if created < l.cutoff {
			l.expire(k)
			return nil
		}
		l.migrate(k, v, created, exp)
		st.last = max(st.last, created)
		ts := st.term(terminal)
		rk := st.key(requestID)
		ts.tombs[rk] = tomb{created: created}
		l.live = append(l.live, timed{at: created, ts: ts, key: rk, tomb: true})
		return nil
	})
}

// finish queues what the loaders gathered by time: velocity windows,
// recent transactions and idempotency entries, the last two trimmed to
// MaxEntries, keeping the newest.
func (l *loader) finish() {
	st, maxEntries := l.st, l.e.opts.MaxEntries
	byTime := func(a, b timed) int { return cmp.Compare(a.at, b.at) }
	slices.SortStableFunc(l.approvals, byTime)
	for _, a := range l.approvals {
		a.ts.vel[a.hash] = append(a.ts.vel[a.hash], a.at)
		st.velQ.push(expiring{at: a.at, term: a.ts.idx, hash: a.hash})
	}
	recent := l.recent
	slices.SortStableFunc(recent, byTime)
	if over := len(recent) - maxEntries; over > 0 {
		for _, r := range recent[:over] {
			delete(st.txs, r.seq)
		}
		recent = recent[over:]
	}
	for _, r := range recent {
		st.txQ.push(expiringTx{at: r.at, seq: r.seq})
	}
	live := l.live
	slices.SortStableFunc(live, byTime)
	if over := len(live) - maxEntries; over > 0 {
		// Keep the newest in memory; the others stay on disk.
		for _, q := range live[:over] {
			if q.tomb {
				delete(q.ts.tombs, q.key)
			} else {
				delete(q.ts.entries, q.key)
				delete(q.ts.closes, q.key)
			}
		}
		st.evictedUntil = live[over-1].at
		live = live[over:]
	}
	for _, q := range live {
		st.entryQ.push(expiring{at: q.at, term: q.ts.idx, key: q.key, tomb: q.tomb})
	}
	st.entryCount = len(live)
}
