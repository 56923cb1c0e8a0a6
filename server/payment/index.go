package payment

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/posfleet/posfleet/server/store"
)

// Secondary indexes of the ledger, written in the same commit as the
// transaction they point to, so that a query filtered by merchant or
// decision reads the entries of its page instead of the ledger:
//
//	pay/xm/<merchant>/<seq>               terminal of each transaction of a merchant
//	pay/xd/<decision>/<seq>               terminal of each transaction by decision
//	pay/xn/<merchant>/<decision>/<seq>    both
//	pay/xt/<terminal>/<decision>/<seq>    a terminal's transactions by decision
//	pay/xi                                every transaction is indexed (see indexLedger)
//
// Values hold the terminal ID (the transaction's key is pay/tx/<terminal>/<seq>).
// A transaction's merchant and decision never change, so the keys are
// written once, when the transaction is created.
var (
	prefixByMerchant         = []byte("pay/xm/")
	prefixByDecision         = []byte("pay/xd/")
	prefixByMerchantDecision = []byte("pay/xn/")
	prefixByTerminalDecision = []byte("pay/xt/")
	keyIndexedFrom           = []byte("pay/xi")
)

// txIndexes returns the index key prefixes (without the sequence number)
// of a transaction of terminal and merchant with decision d.
func txIndexes(terminal, merchant string, d Decision) [4][]byte {
	ds := strconv.Itoa(int(d))
	return [4][]byte{
		keyIndex(prefixByMerchant, merchant),
		keyIndex(prefixByDecision, ds),
		keyIndex(prefixByMerchantDecision, merchant, ds),
		keyIndex(prefixByTerminalDecision, terminal, ds),
	}
}

// indexTx stages the index keys of a new transaction in c.
func indexTx(t *tx, c *commit) {
	for _, p := range txIndexes(t.terminal, t.merchant, t.decision) {
		c.put(store.AppendUint64(p, t.seq), []byte(t.terminal))
	}
}

// indexFor returns the index prefix that serves f, or nil when the
// terminal's ledger (f.TerminalID set without a decision) or the whole
// ledger (no filter) is read instead.
func indexFor(f *TxFilter) []byte {
	ds := strconv.Itoa(int(f.Decision))
	switch {
	case f.TerminalID != "" && f.Decision != DecisionUnspecified:
		return keyIndex(prefixByTerminalDecision, f.TerminalID, ds)
	case f.TerminalID != "":
		return nil
	case f.MerchantID != "" && f.Decision != DecisionUnspecified:
		return keyIndex(prefixByMerchantDecision, f.MerchantID, ds)
	case f.MerchantID != "":
		return keyIndex(prefixByMerchant, f.MerchantID)
	case f.Decision != DecisionUnspecified:
		return keyIndex(prefixByDecision, ds)
	}
	return nil
}

// scanIndexReverse calls fn for the transactions an index lists with
// sequence numbers below before, newest first.
func scanIndexReverse(txn *store.Txn, prefix []byte, before uint64, fn func(*tx) error) error {
	var start []byte
	if before != 1<<64-1 {
		if before <= 1 {
			return nil
		}
		start = store.AppendUint64(prefix, before-1)
	}
	return txn.IterateReverse(prefix, start, func(k, v []byte) error {
		if len(k) != len(prefix)+8 {
			return nil // a longer prefix sharing this one's bytes
		}
		seq := seqOfKey(k)
		tv, err := txn.Get(keyTx(string(v), seq))
		if err != nil {
			return fmt.Errorf("payment: index %q lists transaction %d, unreadable: %w", k, seq, err)
		}
		t, err := decodeTx(tv)
		if err != nil {
			return err
		}
		return fn(t)
	})
}

// indexLedger writes the index keys of every transaction of a store
// written before the indexes existed, once, before the decision loop
// starts: pay/xi then records that every transaction is indexed, and later
// Opens skip it. It reads the whole ledger, in store transactions of
// bounded size.
func (e *Engine) indexLedger() error {
	switch _, err := e.db.Get(keyIndexedFrom); {
	case err == nil:
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	var ws []write
	flush := func() error {
		err := e.writeInChunks(ws)
		ws = ws[:0]
		return err
	}
	err := e.db.View(func(txn *store.Txn) error {
		return txn.Iterate(prefixChunk, nil, func(k, v []byte) error {
			c, err := decodeChunk(k, v)
			if err != nil {
				return err
			}
			for i, term := range c.terminals {
				seq := c.first + uint64(i)
				tv, err := txn.Get(keyTx(term, seq))
				if err != nil {
					return fmt.Errorf("transaction %d: %w", seq, err)
				}
				t, err := decodeTx(tv)
				if err != nil {
					return err
				}
				for _, p := range txIndexes(t.terminal, t.merchant, t.decision) {
					ws = append(ws, write{key: store.AppendUint64(p, seq), value: []byte(term)})
				}
			}
			if len(ws) >= 8000 {
				return flush()
			}
			return nil
		})
	})
	if err == nil {
		err = flush()
	}
	if err == nil {
		err = e.db.Update(func(tx *store.Txn) error { return tx.Set(keyIndexedFrom, encodeIndexedSince(1)) })
	}
	if err != nil {
		return fmt.Errorf("payment: index the ledger: %w", err)
	}
	return nil
}

// scanBudget is how many transactions one ListTransactions call reads for
// a page of limit: enough that a filter matching one in a hundred fills
// the page, few enough that a call takes tens of milliseconds whatever the
// ledger holds.
func scanBudget(limit int) int { return max(100*(limit+1), 10000) }

// seqBefore returns a sequence number above every transaction decided
// before t and at most one commit chunk beyond them (decision times follow
// ledger order).
func seqBefore(txn *store.Txn, t int64) (uint64, error) {
	seq, err := firstSeqAt(txn, t)
	if err != nil {
		return 0, err
	}
	c, err := chunkAt(txn, seq)
	if err != nil || c == nil {
		return seq, err
	}
	return c.next(), nil
}

// TxPage is a page of ListTransactionsPage.
type TxPage struct {
	// Transactions matching the filter, newest first.
	Transactions []Transaction
	// NextPageToken goes on with older transactions; empty on the last
	// page.
	NextPageToken string
	// SearchedFrom, when set, says that the page stopped at its read
	// budget before it was full: transactions decided at or after it
	// were searched, and NextPageToken goes on with older ones.
	SearchedFrom time.Time
}

// ListTransactionsPage is ListTransactions that also says how far back a
// page cut short by its read budget searched (see scanBudget).
func (e *Engine) ListTransactionsPage(ctx context.Context, f TxFilter, limit int, pageToken string) (TxPage, error) {
	return e.listTransactions(ctx, f, limit, pageToken)
}
