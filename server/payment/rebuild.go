package payment

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/posfleet/posfleet/server/store"
)

// rebuild loads the decision loop's state from the store. For every
// terminal with an open batch it reads the batch's checkpoint and scans the
// terminal's ledger from the older of the checkpoint and the start of the
// window (the retention period, at least 26 hours so that every store's
// current business date is covered); the scan completes the batch totals and
// restores daily totals, velocity windows, recent transactions and the
// idempotency entries of Authorize and Refund. Reverse and CloseBatch
// entries and tombstones of the retention period are read from their own
// records; expired ones, and expired request indexes, are deleted, and
// live ones written before such records expired on their own get their
// expiry (see keyTTL). The work is bounded by the retention period and the
// checkpoint interval, not by the ledger's size.
func (e *Engine) rebuild(ctx context.Context) (*state, error) {
	st := newState()
	now := e.clock().UnixNano()
	cutoff := now - int64(e.opts.Retention)
	window := now - int64(max(e.opts.Retention, 26*time.Hour))

	type timed struct {
		at   int64
		ts   *termState
		key  reqKey
		tomb bool
		hash uint64
		seq  uint64
	}
	var approvals, recent, live []timed
	// fixes delete expired idempotency records and tombstones, and rewrite
	// live ones written before such records expired on their own with their
	// expiry.
	var fixes []write
	expire := func(k []byte) { fixes = append(fixes, write{key: bytes.Clone(k), del: true}) }
	migrate := func(k, v []byte, created int64, exp time.Time) {
		if exp.IsZero() {
			fixes = append(fixes, write{key: bytes.Clone(k), value: bytes.Clone(v), ttl: e.keyTTL(created, now)})
		}
	}
	writeIndexedSince := false
	var (
		in   *integrity
		last *chunk
		// listed counts the transactions the chunks from windowSeq on
		// list, scanned those found in the terminals' ledgers.
		listed, scanned uint64
	)

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
		err = txn.Iterate(prefixMerchTerm, nil, func(k, _ []byte) error {
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
		if err != nil {
			return err
		}
		if in, err = readIntegrity(txn); err != nil {
			return err
		}
		if last, err = lastChunk(txn); err != nil {
			return err
		}
		if last != nil {
			st.nextSeq = last.first + uint64(len(last.terminals))
			st.last = max(st.last, last.to)
		}
		switch v, err := txn.Get(keyIndexedSince); {
		case err == nil:
			if st.indexedSince, err = decodeIndexedSince(v); err != nil {
				return fmt.Errorf("%w (key %q)", err, keyIndexedSince)
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		case last != nil:
			// A ledger written before request indexes: its entries of
			// the retention period are found by scanning.
			st.indexedSince, writeIndexedSince = now, true
		default:
			writeIndexedSince = true
		}
		windowSeq, err := firstSeqAt(txn, window)
		if err != nil {
			return err
		}
		// The chain is checked over the window, which holds every commit
		// of the last day and more: the write-ahead log holds less.
		_, err = checkChain(txn, windowSeq, func(c *chunk) error {
			if c.first >= windowSeq {
				listed += uint64(len(c.terminals))
			}
			return nil
		})
		if err != nil {
			return err
		}
		txCutoff := now - int64(e.opts.TxCacheTTL)
		for _, ts := range st.terms {
			b := ts.batch
			if b == nil {
				continue // only terminals with an open batch have transactions
			}
			pol, perr := e.dir.Policy(ts.id)
			velocity := perr == nil && pol.VelocityLimit > 0 && pol.VelocityWindow > 0
			err := scanTerminal(txn, ts.id, min(windowSeq, b.asOf+1), func(t *tx) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				if t.seq >= windowSeq {
					scanned++
				}
				if t.seq > b.asOf {
					b.add(t)
				}
				if t.decided < window {
					return nil
				}
				st.last = max(st.last, t.reversalTime)
				if t.approved() && (t.kind == TxKindSale || t.kind == TxKindPreauth) {
					if !t.reversed {
						ts.days[t.date] += t.dayAmount()
					}
					if velocity {
						approvals = append(approvals, timed{at: t.decided, ts: ts, hash: t.tokenHash})
					}
				}
				if t.decided >= txCutoff {
					st.txs[t.seq] = cachedTx{rec: t.encode(), touched: t.decided}
					recent = append(recent, timed{at: t.decided, seq: t.seq})
				}
				if t.decided >= cutoff {
					if en := t.entry(); en != nil {
						k := st.key(t.requestID)
						ts.entries[k] = en.entryRec
						live = append(live, timed{at: en.created, ts: ts, key: k})
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			ts.pruneDays()
		}
		err = txn.IterateExpiry(prefixRequest, func(k, v []byte, exp time.Time) error {
			en, err := decodeEntry(v)
			if err != nil {
				return fmt.Errorf("%w (key %q)", err, k)
			}
			terminal, requestID, ok := splitTermKey(k, prefixRequest)
			if !ok {
				return fmt.Errorf("payment: malformed request key %q", k)
			}
			if en.created < cutoff {
				expire(k)
				return nil
			}
			migrate(k, v, en.created, exp)
			st.last = max(st.last, en.created)
			ts := st.term(terminal)
			rk := st.key(requestID)
			ts.entries[rk] = en.entryRec
			if en.close != nil {
				ts.closes[rk] = en.close
			}
			live = append(live, timed{at: en.created, ts: ts, key: rk})
			return nil
		})
		if err != nil {
			return err
		}
		err = txn.IterateExpiry(prefixReqIndex, func(k, v []byte, exp time.Time) error {
			created, _, err := decodeReqIndex(v)
			if err != nil {
				return fmt.Errorf("%w (key %q)", err, k)
			}
			if created < cutoff {
				expire(k)
			} else {
				migrate(k, v, created, exp)
			}
			return nil
		})
		if err != nil {
			return err
		}
		return txn.IterateExpiry(prefixTombstone, func(k, v []byte, exp time.Time) error {
			created, err := decodeTombstone(v)
			if err != nil {
				return fmt.Errorf("%w (key %q)", err, k)
			}
			terminal, requestID, ok := splitTermKey(k, prefixTombstone)
			if !ok {
				return fmt.Errorf("payment: malformed tombstone key %q", k)
			}
			if created < cutoff {
				expire(k)
				return nil
			}
			migrate(k, v, created, exp)
			st.last = max(st.last, created)
			ts := st.term(terminal)
			rk := st.key(requestID)
			ts.tombs[rk] = tomb{created: created}
			live = append(live, timed{at: created, ts: ts, key: rk, tomb: true})
			return nil
		})
	})
	if err != nil {
		if errors.Is(err, store.ErrCorrupt) && !strings.Contains(err.Error(), recoveryHint) {
			err = fmt.Errorf("%w; %s", err, recoveryHint)
		}
		return nil, fmt.Errorf("payment: rebuild state: %w", err)
	}
	mark, path := loadMark(e.db.Watermark())
	h, err := checkHead(in, last, mark, path)
	if err != nil {
		return nil, err
	}
	st.head = h
	if listed != scanned {
		return nil, corrupt("the commit chunks of the last %v list %d transactions, the terminals' ledgers hold %d of them", max(e.opts.Retention, 26*time.Hour), listed, scanned)
	}
	if err := e.startEpoch(st, in, last, mark); err != nil {
		return nil, err
	}

	byTime := func(a, b timed) int { return cmp.Compare(a.at, b.at) }
	slices.SortStableFunc(approvals, byTime)
	for _, a := range approvals {
		a.ts.vel[a.hash] = append(a.ts.vel[a.hash], a.at)
		st.velQ.push(expiring{at: a.at, term: a.ts.idx, hash: a.hash})
	}
	slices.SortStableFunc(recent, byTime)
	if over := len(recent) - e.opts.MaxEntries; over > 0 {
		for _, r := range recent[:over] {
			delete(st.txs, r.seq)
		}
		recent = recent[over:]
	}
	for _, r := range recent {
		st.txQ.push(expiringTx{at: r.at, seq: r.seq})
	}
	slices.SortStableFunc(live, byTime)
	if over := len(live) - e.opts.MaxEntries; over > 0 {
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

	if err := e.writeInChunks(fixes); err != nil {
		return nil, fmt.Errorf("payment: expire idempotency records: %w", err)
	}
	if writeIndexedSince {
		err := e.db.Update(func(tx *store.Txn) error {
			return tx.Set(keyIndexedSince, encodeIndexedSince(st.indexedSince))
		})
		if err != nil {
			return nil, fmt.Errorf("payment: record request index start: %w", err)
		}
	}
	return st, nil
}

// startEpoch makes the engine's ID codec with a new epoch, recorded (with
// the database's ID key when it is new) before any ID of it is handed out,
// and brings the watermark (mark, as loaded) up to the ledger head
// st.head, which the caller checked against it.
func (e *Engine) startEpoch(st *state, in *integrity, last *chunk, mark []byte) error {
	h := st.head
	var ws []write
	if in.key == nil {
		if last != nil {
			return corrupt("the authorization ID key (key %q) is missing while the ledger holds %d transactions", keyIDKey, h.seq)
		}
		in.key = make([]byte, 16)
		if _, err := rand.Read(in.key); err != nil {
			return err
		}
		ws = append(ws, write{key: keyIDKey, value: encodeIDKey(in.key)})
	}
	_, epochWrites, err := newEpoch(in, st.nextSeq)
	if err != nil {
		return err
	}
	ws = append(ws, epochWrites...)
	if e.ids, err = newIDCodec(in.key, in.epochs); err != nil {
		return err
	}
	if err := e.writeInChunks(ws); err != nil {
		return fmt.Errorf("payment: record ID epoch: %w", err)
	}
	if wm := e.db.Watermark(); wm != nil && h.commits > 0 && !bytes.Equal(mark, h.encode()) {
		// A new or restored database, or a commit made durable just
		// before a crash that kept it from the watermark.
		if err := wm.Store(h.encode()); err != nil {
			return fmt.Errorf("payment: %w", err)
		}
	}
	return nil
}

// writeInChunks applies ws in store transactions of at most 1000 writes.
func (e *Engine) writeInChunks(ws []write) error {
	for len(ws) > 0 {
		chunk := ws[:min(len(ws), 1000)]
		ws = ws[len(chunk):]
		if err := e.db.Update(func(tx *store.Txn) error { return applyWrites(tx, chunk) }); err != nil {
			return err
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
