package payment

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"github.com/posfleet/posfleet/server/store"
)

// rebuild loads the decision loop's state from the store, one record kind
// per loader (see loader): merchant terminals, the chain of commit chunks
// over the newest transactions and, once for a store written before every
// idempotency record had an expiry, Reverse and CloseBatch records,
// request indexes and tombstones, expiring old ones and giving live ones
// their expiry (see keyTTL). Terminals' open batches, daily totals and
// velocity windows are read on each terminal's first request
// (Engine.terminal), and idempotency entries of before Open are looked up
// on disk, so the work and the memory of Open do not grow with the ledger
// or the retention window.
func (e *Engine) rebuild(ctx context.Context) (*state, error) {
	l := e.newLoader()
	err := e.db.View(func(txn *store.Txn) error {
		loads := []func(*store.Txn) error{
			l.merchantTerminals,
			l.chain,
			l.requests,
			l.requestIndexes,
			l.tombstones,
		}
		for _, load := range loads {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := load(txn); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrCorrupt) && !strings.Contains(err.Error(), recoveryHint) {
			err = fmt.Errorf("%w; %s", err, recoveryHint)
		}
		return nil, fmt.Errorf("payment: rebuild state: %w", err)
	}
	st := l.st
	mark, path := loadMark(e.db.Watermark())
	h, err := checkHead(l.in, l.last, mark, path)
	if err != nil {
		return nil, err
	}
	st.head = h
	if l.missing > 0 {
		return nil, corrupt("the commit chunks of the newest %d transactions list %d, the terminals' ledgers hold %d of them", openCheckTransactions, l.listed, l.listed-l.missing)
	}
	e.windowSeq = l.windowSeq
	// Decisions from now on are later than anything decided before Open,
	// and every idempotency entry of the retention period created before
	// them is on disk.
	st.last = max(st.last, l.now)
	st.evictedUntil = st.last
	if err := e.startEpoch(st, l.in, l.last, mark); err != nil {
		return nil, err
	}
	if !l.migrated {
		fixes := append(l.fixes, write{key: keyMigrated, value: encodeIndexedSince(l.now)})
		if err := e.writeInChunks(fixes); err != nil {
			return nil, fmt.Errorf("payment: expire idempotency records: %w", err)
		}
	}
	if l.writeIndexedSince {
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
