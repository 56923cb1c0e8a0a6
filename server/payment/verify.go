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
		v := &verifier{ctx: ctx, txn: txn, r: r}
		listed, err := v.transactions()
		if err != nil {
			return err
		}
		last, err := v.chain(listed)
		if err != nil {
			return err
		}
		if err := v.requestIndexes(); err != nil {
			return err
		}
		if err := v.otherRecords(); err != nil {
			return err
		}
		return verifyHead(txn, db.Watermark(), last, r)
	})
	return r, err
}

// verifier holds what the steps of Verify share: the read transaction and
// the report they add to.
type verifier struct {
	ctx context.Context
	txn *store.Txn
	r   *VerifyReport
}

// decodeAll decodes every record under prefix, counting them as kind and
// reporting those that fail check.
func (v *verifier) decodeAll(prefix []byte, kind string, check func(k, v []byte) error) error {
	return v.txn.Iterate(prefix, nil, func(k, val []byte) error {
		if err := v.ctx.Err(); err != nil {
			return err
		}
		v.r.Records[kind]++
		if err := check(k, val); err != nil {
			v.r.problem("%s %q: %v", kind, k, err)
		}
		return nil
	})
}

// transactions checks every transaction record and returns each one's
// sequence number mapped to its terminal, as the records say.
func (v *verifier) transactions() (listed map[uint64]string, err error) {
	r := v.r
	listed = map[uint64]string{}
	err = v.decodeAll(prefixTx, "transactions", func(k, val []byte) error {
		t, err := decodeTx(val)
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
	return listed, err
}

// chain checks the hash chain of commit chunks against the transactions
// listed (which it empties) and returns the last chunk. A broken chain is
// a problem, not an error.
func (v *verifier) chain(listed map[uint64]string) (*chunk, error) {
	r := v.r
	var chunks int
	last, err := checkChain(v.txn, 1, func(c *chunk) error {
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
			return last, err
		}
		r.problem("%v", err)
	} else {
		for seq, term := range listed {
			r.problem("transaction %d of %s is in no commit chunk", seq, term)
		}
	}
	return last, nil
}

// requestIndexes checks that every request index names a transaction of
// its request.
func (v *verifier) requestIndexes() error {
	return v.decodeAll(prefixReqIndex, "request indexes", func(k, val []byte) error {
		_, seq, err := decodeReqIndex(val)
		if err != nil {
			return err
		}
		terminal, requestID, ok := splitTermKey(k, prefixReqIndex)
		if !ok {
			return errors.New("malformed key")
		}
		tv, err := v.txn.Get(keyTx(terminal, seq))
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
}

// otherRecords checks that the records of the other families decode and
// that the keys of those that name them match.
func (v *verifier) otherRecords() error {
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
		if err := v.decodeAll(f.prefix, f.kind, f.check); err != nil {
			return err
		}
	}
	if val, err := v.txn.Get(keyIndexedSince); err == nil {
		if _, err := decodeIndexedSince(val); err != nil {
			v.r.problem("key %q: %v", keyIndexedSince, err)
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
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
