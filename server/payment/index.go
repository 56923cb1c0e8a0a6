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
// transaction they point to, so that a filtered query reads the entries of
// its page instead of the ledger:
//
//	pay/xm/<merchant>/<seq>               terminal of each transaction of a merchant
//	pay/xd/<decision>/<seq>               terminal of each transaction by decision
//	pay/xn/<merchant>/<decision>/<seq>    both
//	pay/xt/<terminal>/<decision>/<seq>    a terminal's transactions by decision
//	pay/xs/<merchant>/<store>/<seq>       transactions of a store (store IDs are a merchant's)
//	pay/xc/<response code>/<seq>          transactions by response code
//	pay/xi                                every transaction has the first four (see indexLedger)
//	pay/xv                                the index generation every transaction has (indexVersion)
//
// Values hold the terminal ID (the transaction's key is pay/tx/<terminal>/<seq>).
// A transaction's merchant, store, decision and response code never
// change, so the keys are written once, when the transaction is created.
// Sequence numbers follow decision times, so each index is also in time
// order: a time range is a range of its keys.
var (
	prefixByMerchant         = []byte("pay/xm/")
	prefixByDecision         = []byte("pay/xd/")
	prefixByMerchantDecision = []byte("pay/xn/")
	prefixByTerminalDecision = []byte("pay/xt/")
	prefixByStore            = []byte("pay/xs/")
	prefixByCode             = []byte("pay/xc/")
	keyIndexedFrom           = []byte("pay/xi")
	keyIndexVersion          = []byte("pay/xv")
)

// indexVersion is the generation of the ledger's indexes: 1 the first
// four (pay/xi marks them built), 2 adds the store and response code
// indexes. Open builds what a store written by an earlier version lacks.
const indexVersion = 2

// txIndexesV1 returns the prefixes (without the sequence number) of the
// first generation of indexes of t.
func txIndexesV1(t *tx) [][]byte {
	ds := strconv.Itoa(int(t.decision))
	return [][]byte{
		keyIndex(prefixByMerchant, t.merchant),
		keyIndex(prefixByDecision, ds),
		keyIndex(prefixByMerchantDecision, t.merchant, ds),
		keyIndex(prefixByTerminalDecision, t.terminal, ds),
	}
}

// txIndexesV2 returns the prefixes of the indexes of t added in version 2:
// none for a transaction without a store or a response code.
func txIndexesV2(t *tx) [][]byte {
	var ps [][]byte
	if t.store != "" {
		ps = append(ps, keyIndex(prefixByStore, t.merchant, t.store))
	}
	if t.code != "" {
		ps = append(ps, keyIndex(prefixByCode, t.code))
	}
	return ps
}

// indexTx stages the index keys of a new transaction in c.
func indexTx(t *tx, c *commit) {
	for _, p := range append(txIndexesV1(t), txIndexesV2(t)...) {
		c.put(store.AppendUint64(p, t.seq), []byte(t.terminal))
	}
}

// txSource is one way of reading the transactions a filter may match,
// newest first: an index, a terminal's ledger, or the whole ledger.
type txSource struct {
	// prefix is the index's key prefix, or the terminal's ledger's
	// (terminal set); nil for the whole ledger.
	prefix   []byte
	terminal string
	// index is set when prefix is an index's.
	index bool
}

// sourcesFor returns every source that serves f: the indexes whose keys
// match a part of it, the terminal's ledger when f names a terminal, or
// else the whole ledger alone.
func sourcesFor(f *TxFilter) []txSource {
	ds := strconv.Itoa(int(f.Decision))
	var out []txSource
	add := func(ok bool, prefix []byte) {
		if ok {
			out = append(out, txSource{prefix: prefix, index: true})
		}
	}
	decided := f.Decision != DecisionUnspecified
	add(f.TerminalID != "" && decided, keyIndex(prefixByTerminalDecision, f.TerminalID, ds))
	if f.TerminalID != "" {
		out = append(out, txSource{prefix: keyIndex(prefixTx, f.TerminalID), terminal: f.TerminalID})
	}
	add(f.MerchantID != "" && f.StoreID != "", keyIndex(prefixByStore, f.MerchantID, f.StoreID))
	add(f.MerchantID != "" && decided, keyIndex(prefixByMerchantDecision, f.MerchantID, ds))
	add(f.MerchantID != "" && !decided, keyIndex(prefixByMerchant, f.MerchantID))
	add(f.ResponseCode != "", keyIndex(prefixByCode, f.ResponseCode))
	add(decided && f.MerchantID == "" && f.TerminalID == "", keyIndex(prefixByDecision, ds))
	if len(out) == 0 {
		out = append(out, txSource{})
	}
	return out
}

// probeWidth is how many keys below a page's start chooseSource reads
// from each source that serves a filter, to tell which is sparsest there.
const probeWidth = 32

// chooseSource returns the most selective of the sources that serve a
// filter: the sparsest just below before (see store.Txn.Sparsest), so
// that the fewest entries are read per match. It adds the keys it read
// to *read.
func chooseSource(txn *store.Txn, srcs []txSource, before uint64, read *uint64) (txSource, error) {
	if len(srcs) == 1 {
		return srcs[0], nil
	}
	prefixes := make([][]byte, len(srcs))
	for i, s := range srcs {
		prefixes[i] = s.prefix // several sources: none is the whole ledger
	}
	best, n, err := txn.Sparsest(prefixes, before, probeWidth)
	*read += uint64(n)
	return srcs[best], err
}

// startBelow returns the key a reverse scan of prefix starts at to read
// sequence numbers below before: nil for the newest (before is the
// largest), else prefix+(before-1).
func startBelow(prefix []byte, before uint64) []byte {
	if before == 1<<64-1 {
		return nil
	}
	return store.AppendUint64(prefix, max(before, 1)-1)
}

// scan calls fn for the transactions of s with sequence numbers below
// before, newest first. Reading an index, it first rules out, from keys
// alone, the entries that cannot match: those p shows absent from another
// index the filter names, or of another terminal (see indexProbe).
func (s txSource) scan(txn *store.Txn, before uint64, p *indexProbe, fn func(*tx) error) error {
	switch {
	case s.index:
		return scanIndexReverse(txn, s.prefix, before, p, fn)
	case s.terminal != "":
		return scanTerminalReverse(txn, s.terminal, before, fn)
	default:
		return scanLedgerReverse(txn, before, fn)
	}
}

// indexProbe rules out index entries without reading their transactions.
// A filter served by several indexes is read from the sparsest (see
// chooseSource); an entry of it can match only if each of the others also
// lists its sequence number, and only if the terminal its value names is
// the filter's. Looking up a key that is not there costs a fraction of
// reading a transaction (the store's Bloom filters answer most such
// lookups), so a page whose matches are rare among the entries read costs
// that much less, for the same read budget.
type indexProbe struct {
	// others are the prefixes of the other indexes that serve the filter.
	others [][]byte
	// terminal is the filter's terminal ID ("" for any).
	terminal string
	// from is the lowest sequence number the filter's start time allows
	// (1 without a start time): entries below it are older than the range.
	from uint64
	// pass spends the read budget of an entry ruled out; false when the
	// budget is spent, and the entry is then read as any other, for the
	// place where the next page resumes.
	pass func(reads int) bool
	key  []byte
}

// rules reports whether the entry seq of an index, whose value is terminal,
// is ruled out; reads counts the keys looked up.
func (p *indexProbe) rules(txn *store.Txn, seq uint64, terminal []byte) (out bool, reads int, err error) {
	if p.terminal != "" && string(terminal) != p.terminal {
		return true, 0, nil
	}
	for _, o := range p.others {
		p.key = store.AppendUint64(append(p.key[:0], o...), seq)
		reads++
		if _, err := txn.Get(p.key); errors.Is(err, store.ErrNotFound) {
			return true, reads, nil
		} else if err != nil {
			return false, reads, err
		}
	}
	return false, reads, nil
}

// scanIndexReverse calls fn for the transactions an index lists with
// sequence numbers below before, newest first, skipping those p rules out
// while p.pass allows (p may be nil).
func scanIndexReverse(txn *store.Txn, prefix []byte, before uint64, p *indexProbe, fn func(*tx) error) error {
	if before <= 1 {
		return nil
	}
	return txn.IterateReverse(prefix, startBelow(prefix, before), func(k, v []byte) error {
		if len(k) != len(prefix)+8 {
			return nil // a longer prefix sharing this one's bytes
		}
		seq := seqOfKey(k)
		if p != nil {
			if seq < p.from {
				return store.ErrStop
			}
			out, reads, err := p.rules(txn, seq, v)
			if err != nil {
				return err
			}
			if out && p.pass(reads) {
				return nil
			}
		}
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

// indexLedger writes the index keys that transactions written by an
// earlier version lack, once, before the decision loop starts: every
// index when pay/xi is missing, those added since the generation pay/xv
// records otherwise. pay/xi and pay/xv then record that every transaction
// is indexed, and later Opens skip it. It reads the whole ledger, in store
// transactions of bounded size, only on the first Open of such a store.
func (e *Engine) indexLedger() error {
	needV1, err := e.missing(keyIndexedFrom, 1)
	if err != nil {
		return err
	}
	needV2, err := e.missing(keyIndexVersion, indexVersion)
	if err != nil {
		return err
	}
	if !needV1 && !needV2 {
		return nil
	}
	var ws []write
	flush := func() error {
		err := e.writeInChunks(ws)
		ws = ws[:0]
		return err
	}
	err = e.db.View(func(txn *store.Txn) error {
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
				var ps [][]byte
				if needV1 {
					ps = txIndexesV1(t)
				}
				if needV2 {
					ps = append(ps, txIndexesV2(t)...)
				}
				for _, p := range ps {
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
		err = e.db.Update(func(tx *store.Txn) error {
			if err := tx.Set(keyIndexedFrom, encodeIndexedSince(1)); err != nil {
				return err
			}
			return tx.Set(keyIndexVersion, encodeIndexedSince(indexVersion))
		})
	}
	if err != nil {
		return fmt.Errorf("payment: index the ledger: %w", err)
	}
	return nil
}

// missing reports whether the marker key records a generation below want
// (or is absent).
func (e *Engine) missing(key []byte, want int64) (bool, error) {
	v, err := e.db.Get(key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return true, nil
	case err != nil:
		return false, err
	}
	got, err := decodeIndexedSince(v)
	if err != nil {
		return false, fmt.Errorf("payment: index marker %q: %w", key, err)
	}
	return got < want, nil
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
