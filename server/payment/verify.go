package payment

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/posfleet/posfleet/server/store"
)

// VerifyReport is what Verify found in the payment records of a database.
type VerifyReport struct {
	// Records counts the records read, by kind (e.g. "transactions",
	// "commit chunks").
	Records map[string]int
	// Commits and LastSequence are the ledger head's: the commits made and
	// the last transaction's sequence number.
	Commits, LastSequence uint64
	// Terminals lists the terminals that have transactions, for checks
	// against the fleet's records.
	Terminals []string
	// Problems describes each inconsistency found; none means the payment
	// records are whole.
	Problems []string
}

// maxProblems bounds the problems Verify lists, so that a badly damaged
// database gives a readable report.
const maxProblems = 100

func (r *VerifyReport) problem(format string, args ...any) {
	if len(r.Problems) == maxProblems {
		r.Problems = append(r.Problems, "more problems not listed")
	}
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// Verify reads every payment record of db (which may be opened read-only)
// and checks the ledger's invariants: every record decodes; the commit
// chunks form an unbroken hash chain from transaction 1; every transaction
// a chunk lists exists under its terminal with that sequence number, and
// every transaction is listed; every request index names an existing
// transaction of that request; the ledger head matches the last chunk and
// is not behind the watermark file; the ID key and epochs cover the
// ledger. It returns an error only when it could not read the database;
// damage is reported in the report's Problems.
func Verify(ctx context.Context, db *store.DB) (*VerifyReport, error) {
	r := &VerifyReport{Records: map[string]int{}}
	err := db.View(func(txn *store.Txn) error {
		// decodeAll decodes every record under prefix, counting them as
		// kind and reporting those that fail.
		decodeAll := func(prefix []byte, kind string, check func(k, v []byte) error) error {
			return txn.Iterate(prefix, nil, func(k, v []byte) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				r.Records[kind]++
				if err := check(k, v); err != nil {
					r.problem("%s %q: %v", kind, k, err)
				}
				return nil
			})
		}
		// listed maps each transaction's sequence number to its terminal,
		// as the transaction records say.
		listed := map[uint64]string{}
		err := decodeAll(prefixTx, "transactions", func(k, v []byte) error {
			t, err := decodeTx(v)
			if err != nil {
				return err
			}
			if !bytes.Equal(k, keyTx(t.terminal, t.seq)) {
				return fmt.Errorf("holds transaction %d of %s", t.seq, t.terminal)
			}
			listed[t.seq] = t.terminal
			if n := len(r.Terminals); n == 0 || r.Terminals[n-1] != t.terminal {
				r.Terminals = append(r.Terminals, t.terminal) // keys are by terminal
			}
			return nil
		})
		if err != nil {
			return err
		}
		var chunks int
		last, err := checkChain(txn, 1, func(c *chunk) error {
			chunks++
			for i, term := range c.terminals {
				seq := c.first + uint64(i)
				switch got, ok := listed[seq]; {
				case !ok:
					r.problem("commit chunk %d lists transaction %d of %s, which is missing", c.first, seq, term)
				case got != term:
					r.problem("commit chunk %d lists transaction %d as %s's, the record is %s's", c.first, seq, term, got)
				}
				delete(listed, seq)
			}
			return nil
		})
		r.Records["commit chunks"] = chunks
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				return err
			}
			r.problem("%v", err)
		} else {
			for seq, term := range listed {
				r.problem("transaction %d of %s is in no commit chunk", seq, term)
			}
		}
		err = decodeAll(prefixReqIndex, "request indexes", func(k, v []byte) error {
			_, seq, err := decodeReqIndex(v)
			if err != nil {
				return err
			}
			terminal, requestID, ok := splitTermKey(k, prefixReqIndex)
			if !ok {
				return errors.New("malformed key")
			}
			tv, err := txn.Get(keyTx(terminal, seq))
			if err != nil {
				return fmt.Errorf("indexes transaction %d: %w", seq, err)
			}
			t, err := decodeTx(tv)
			if err != nil {
				return fmt.Errorf("indexes transaction %d: %w", seq, err)
			}
			if t.requestID != requestID {
				return fmt.Errorf("indexes transaction %d, which is request %q's", seq, t.requestID)
			}
			return nil
		})
		if err != nil {
			return err
		}
		families := []struct {
			prefix []byte
			kind   string
			check  func(k, v []byte) error
		}{
			{prefixRequest, "reverse and close records", func(_, v []byte) error { _, err := decodeEntry(v); return err }},
			{prefixTombstone, "tombstones", func(_, v []byte) error { _, err := decodeTombstone(v); return err }},
			{prefixOpenBatch, "open batches", func(k, v []byte) error { return checkBatchKey(k, v, prefixOpenBatch) }},
			{prefixBatch, "closed batches", func(k, v []byte) error { return checkBatchKey(k, v, prefixBatch) }},
			{prefixMerchTerm, "merchant terminals", func(k, _ []byte) error {
				if _, _, ok := splitTermKey(k, prefixMerchTerm); !ok {
					return errors.New("malformed key")
				}
				return nil
			}},
		}
		for _, f := range families {
			if err := decodeAll(f.prefix, f.kind, f.check); err != nil {
				return err
			}
		}
		if v, err := txn.Get(keyIndexedSince); err == nil {
			if _, err := decodeIndexedSince(v); err != nil {
				r.problem("key %q: %v", keyIndexedSince, err)
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return verifyHead(txn, db.Watermark(), last, r)
	})
	return r, err
}

// checkBatchKey decodes a batch record and checks that its key names it.
func checkBatchKey(k, v, prefix []byte) error {
	b, err := decodeBatch(v)
	if err != nil {
		return err
	}
	want := keyOpenBatch(b.terminal)
	if !bytes.Equal(prefix, prefixOpenBatch) {
		want = keyBatch(b.terminal, b.number)
	}
	if !bytes.Equal(k, want) {
		return fmt.Errorf("holds batch %d of %s", b.number, b.terminal)
	}
	return nil
}

// verifyHead checks the head, the ID key and the epochs against the last
// chunk and the watermark.
func verifyHead(txn *store.Txn, wm *store.Watermark, last *chunk, r *VerifyReport) error {
	in, err := readIntegrity(txn)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			return err
		}
		r.problem("%v", err)
		return nil
	}
	r.Records["epochs"] = len(in.epochs)
	mark, path := loadMark(wm)
	h, err := checkHead(in, last, mark, path)
	if err != nil {
		r.problem("%v", err)
	}
	r.Commits, r.LastSequence = h.commits, h.seq
	if last == nil {
		return nil
	}
	if in.key == nil {
		r.problem("the authorization ID key (key %q) is missing", keyIDKey)
	}
	if len(in.epochs) == 0 || in.epochs[0].start > 1 {
		r.problem("no ID epoch covers the first transactions: their IDs cannot be read back")
	}
	return nil
}
