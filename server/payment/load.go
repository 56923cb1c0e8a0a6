package payment

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/posfleet/posfleet/server/store"
)

// loader gathers what the decision loop needs from the store at Open, one
// record kind at a time (see Engine.rebuild). Its methods run inside one
// store.View, in the order rebuild calls them. Nothing it reads grows with
// the ledger or the retention window, except the one-time migration of
// idempotency records written without an expiry: a terminal's state is
// read on its first request (Engine.terminal), and idempotency entries of
// before Open are looked up on disk.
type loader struct {
	e   *Engine
	st  *state
	now int64
	// cutoff starts the retention period; window starts the rebuild
	// window (the retention period, at least 26 hours, so that every
	// store's current business date is covered).
	cutoff, window int64

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
	// tailSeq is the first sequence number of the tail of the ledger
	// checked at Open (see openCheckTransactions); listed counts the
	// transactions the tail's chunks list, missing those absent from
	// the terminals' ledgers.
	tailSeq         uint64
	listed, missing uint64
	// migrated is set when the idempotency records already carry their
	// expiry (keyMigrated): the migration loaders are skipped.
	migrated bool
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

// keyMigrated records that every idempotency record, request index and
// tombstone carries its expiry, so that Open need not read them all.
var keyMigrated = []byte("pay/ttl")

// openCheckTransactions is how many of the newest transactions Open checks:
// the chain of their commit chunks, and that each is in its terminal's
// ledger and decodes: about what one 16 MiB memtable of the store's
// write-ahead log holds, at a fixed cost of a fraction of a second. A lost
// tail of that log loses the ledger head with it, which Open refuses;
// Verify checks the whole ledger.
const openCheckTransactions = 1 << 15

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
	switch _, err := txn.Get(keyMigrated); {
	case err == nil:
		l.migrated = true
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	l.tailSeq = 1
	if st.nextSeq > openCheckTransactions {
		l.tailSeq = st.nextSeq - openCheckTransactions
	}
	_, err = checkChain(txn, l.tailSeq, func(c *chunk) error {
		for i, term := range c.terminals {
			seq := c.first + uint64(i)
			if seq < l.tailSeq {
				continue
			}
			l.listed++
			v, err := txn.Get(keyTx(term, seq))
			switch {
			case errors.Is(err, store.ErrNotFound):
				l.missing++
			case err != nil:
				return err
			default:
				if _, err := decodeTx(v); err != nil {
					return fmt.Errorf("%w (key %q)", err, keyTx(term, seq))
				}
			}
		}
		return nil
	})
	return err
}

// requests gives the idempotency records of Reverse and CloseBatch
// (pay/rq/) written without an expiry theirs, and deletes those past the
// retention period.
func (l *loader) requests(txn *store.Txn) error {
	return l.migrateRecords(txn, prefixRequest, func(v []byte) (int64, error) {
		en, err := decodeEntry(v)
		if err != nil {
			return 0, err
		}
		return en.created, nil
	})
}

// requestIndexes does the same for the request indexes (pay/ri/).
func (l *loader) requestIndexes(txn *store.Txn) error {
	return l.migrateRecords(txn, prefixReqIndex, func(v []byte) (int64, error) {
		created, _, err := decodeReqIndex(v)
		return created, err
	})
}

// tombstones does the same for the tombstones (pay/ts/).
func (l *loader) tombstones(txn *store.Txn) error {
	return l.migrateRecords(txn, prefixTombstone, decodeTombstone)
}

// migrateRecords expires the records under prefix created before the
// retention period and gives the others their expiry when they have
// none; created reads a record's creation time.
func (l *loader) migrateRecords(txn *store.Txn, prefix []byte, created func(v []byte) (int64, error)) error {
	if l.migrated {
		return nil
	}
	return txn.IterateExpiry(prefix, func(k, v []byte, exp time.Time) error {
		at, err := created(v)
		if err != nil {
			return fmt.Errorf("%w (key %q)", err, k)
		}
		if at < l.cutoff {
			l.expire(k)
		} else {
			l.migrate(k, v, at, exp)
		}
		return nil
	})
}
