package payment

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/posfleet/posfleet/server/store"
)

// Reading the ledger on disk. These helpers run inside a store.View and see
// only what is durable.

// chunkAt returns the commit chunk that holds transaction seq, or nil.
func chunkAt(txn *store.Txn, seq uint64) (*chunk, error) {
	c, err := chunkAtOrBefore(txn, seq)
	if err != nil || c == nil {
		return nil, err
	}
	if _, ok := c.terminal(seq); !ok {
		return nil, nil
	}
	return c, nil
}

// lastChunk returns the newest commit chunk, or nil for an empty ledger.
func lastChunk(txn *store.Txn) (*chunk, error) {
	return lastChunkFrom(txn, nil)
}

// lastChunkFrom returns the last commit chunk whose key is at or before
// start (nil for the newest), or nil: one seek that reads one chunk.
func lastChunkFrom(txn *store.Txn, start []byte) (*chunk, error) {
	k, v, ok, err := txn.Last(prefixChunk, start)
	if err != nil || !ok {
		return nil, err
	}
	return decodeChunk(k, v)
}

// firstSeqAt returns the sequence number of the first chunk whose
// transactions were decided at or after t (decision times follow sequence
// order), or the next sequence number when there is none: a lower bound for
// transactions decided at or after t.
func firstSeqAt(txn *store.Txn, t int64) (uint64, error) {
	last, err := lastChunk(txn)
	if err != nil || last == nil {
		return 1, err
	}
	if last.to < t {
		return last.first + uint64(len(last.terminals)), nil
	}
	// Binary search for the first sequence number whose chunk (the one
	// holding it or the last before it) ends at or after t.
	lo, hi := uint64(1), last.first
	for lo < hi {
		mid := lo + (hi-lo)/2
		c, err := chunkAtOrBefore(txn, mid)
		if err != nil {
			return 0, err
		}
		if c != nil && c.to >= t {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	c, err := chunkAtOrBefore(txn, lo)
	if err != nil || c == nil {
		return lo, err
	}
	return c.first, nil
}

func chunkAtOrBefore(txn *store.Txn, seq uint64) (*chunk, error) {
	return lastChunkFrom(txn, keyChunk(seq))
}

// loadTx reads transaction seq, or returns nil when it does not exist.
func loadTx(txn *store.Txn, seq uint64) (*tx, error) {
	c, err := chunkAt(txn, seq)
	if err != nil || c == nil {
		return nil, err
	}
	term, _ := c.terminal(seq)
	v, err := txn.Get(keyTx(term, seq))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("payment: chunk %d lists transaction %d of %s, which is missing", c.first, seq, term)
	}
	if err != nil {
		return nil, err
	}
	return decodeTx(v)
}

// scanTerminal calls fn for the terminal's transactions with sequence
// numbers from `from` on, in ledger order; fn returns store.ErrStop to stop.
func scanTerminal(txn *store.Txn, terminal string, from uint64, fn func(*tx) error) error {
	prefix := keyIndex(prefixTx, terminal)
	return txn.Iterate(prefix, store.AppendUint64(prefix, from), func(k, v []byte) error {
		t, err := decodeTx(v)
		if err != nil {
			return fmt.Errorf("%w (key %q)", err, k)
		}
		return fn(t)
	})
}

// scanTerminalReverse calls fn for the terminal's transactions with
// sequence numbers below `before`, newest first.
func scanTerminalReverse(txn *store.Txn, terminal string, before uint64, fn func(*tx) error) error {
	prefix := keyIndex(prefixTx, terminal)
	var start []byte
	if before != 1<<64-1 {
		if before == 0 {
			return nil
		}
		start = store.AppendUint64(prefix, before-1)
	}
	return txn.IterateReverse(prefix, start, func(k, v []byte) error {
		t, err := decodeTx(v)
		if err != nil {
			return fmt.Errorf("%w (key %q)", err, k)
		}
		return fn(t)
	})
}

// findEntry looks up the idempotency entry of requestID on disk, created
// within the retention period (cutoff): a Reverse or CloseBatch record, or
// the transaction an Authorize or Refund made, through its request index.
// Entries created before indexedSince may have no request index (they were
// written before the index existed): for those it scans the terminal's
// ledger, and reports that it did.
func findEntry(txn *store.Txn, terminal, requestID string, cutoff, indexedSince int64) (en *entry, scanned bool, err error) {
	v, err := txn.Get(keyRequest(terminal, requestID))
	switch {
	case err == nil:
		en, err := decodeEntry(v)
		if err != nil {
			return nil, false, err
		}
		if en.created >= cutoff {
			return en, false, nil
		}
		// Past the retention period but not yet past its store expiry:
		// the request ID may since have been used again by an Authorize
		// or Refund, whose request index is next.
	case !errors.Is(err, store.ErrNotFound):
		return nil, false, err
	}
	v, err = txn.Get(keyReqIndex(terminal, requestID))
	switch {
	case err == nil:
		created, seq, err := decodeReqIndex(v)
		if err != nil || created < cutoff {
			return nil, false, err
		}
		v, err := txn.Get(keyTx(terminal, seq))
		if errors.Is(err, store.ErrNotFound) {
			return nil, false, fmt.Errorf("payment: request %s of %s indexes transaction %d, which is missing", requestID, terminal, seq)
		}
		if err != nil {
			return nil, false, err
		}
		t, err := decodeTx(v)
		if err != nil {
			return nil, false, err
		}
		return t.entry(), false, nil
	case !errors.Is(err, store.ErrNotFound):
		return nil, false, err
	}
	if indexedSince <= cutoff {
		return nil, false, nil
	}
	var found *entry
	err = scanTerminalReverse(txn, terminal, 1<<64-1, func(t *tx) error {
		if t.decided < cutoff {
			return store.ErrStop
		}
		if t.requestID == requestID && t.code != CodeDuplicateTransmission {
			found = t.entry()
			return store.ErrStop
		}
		return nil
	})
	return found, true, err
}

// loadOpenBatch reads a terminal's open batch with its current totals: the
// checkpoint plus the terminal's later transactions in the batch.
func loadOpenBatch(txn *store.Txn, terminal string) (*batchState, error) {
	v, err := txn.Get(keyOpenBatch(terminal))
	if err != nil {
		return nil, err
	}
	b, err := decodeBatch(v)
	if err != nil {
		return nil, err
	}
	if err := replayBatch(txn, b); err != nil {
		return nil, err
	}
	return b, nil
}

// replayBatch adds to an open batch's checkpointed totals the terminal's
// transactions after the checkpoint.
func replayBatch(txn *store.Txn, b *batchState) error {
	return scanTerminal(txn, b.terminal, b.asOf+1, func(t *tx) error {
		b.add(t)
		return nil
	})
}

// loadBatch reads a terminal's batch: the open one (with current totals) or
// a closed one.
func loadBatch(txn *store.Txn, terminal string, number uint64) (*batchState, error) {
	b, err := loadOpenBatch(txn, terminal)
	if err == nil && b.number == number {
		return b, nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	v, err := txn.Get(keyBatch(terminal, number))
	if err != nil {
		return nil, fmt.Errorf("payment: batch %d of terminal %s: %w", number, terminal, err)
	}
	return decodeBatch(v)
}

func seqOfKey(k []byte) uint64 { return binary.BigEndian.Uint64(k[len(k)-8:]) }
