package payment

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/posfleet/posfleet/server/store"
)

// ListTransactions returns up to limit transactions matching f, newest first,
// and a token for the next page ("" on the last page). It reads what is
// durable: a transaction appears once its decision was committed. limit <= 0
// means 100. Filters by merchant or decision read an index (see index.go),
// and an end time starts at its place in the ledger, so a page costs in
// proportion to its size; filters by store or response code read their
// own index, and a combination reads the most selective index that serves
// a part of it (see chooseSource) and filters the rest; where the transactions read do not match (a
// terminal's batch, a time range), one call reads at most scanBudget of
// them and returns a shorter page, even an empty one, with the token to go
// on.
func (e *Engine) ListTransactions(ctx context.Context, f TxFilter, limit int, pageToken string) ([]Transaction, string, error) {
	p, err := e.ListTransactionsPage(ctx, f, limit, pageToken)
	return p.Transactions, p.NextPageToken, err
}

// listTransactions is ListTransactionsPage.
func (e *Engine) listTransactions(ctx context.Context, f TxFilter, limit int, pageToken string) (TxPage, error) {
	if err := f.validate(); err != nil {
		return TxPage{}, err
	}
	if limit <= 0 {
		limit = 100
	}
	before, err := parseTxPageToken(pageToken)
	if err != nil {
		return TxPage{}, err
	}
	var out []*tx
	q := txCollector{ctx: ctx, f: &f, budget: scanBudget(limit)}
	if e.readBudget > 0 {
		q.budget = e.readBudget
	}
	if !f.Start.IsZero() {
		q.start = f.Start.UnixNano()
	}
	err = e.db.View(func(txn *store.Txn) error {
		if !f.End.IsZero() {
			end, err := seqBefore(txn, f.End.UnixNano())
			if err != nil {
				return err
			}
			before = min(before, end)
		}
		srcs := sourcesFor(&f)
		src, err := chooseSource(txn, srcs, before, &q.read)
		if err != nil {
			return err
		}
		p, err := q.probe(txn, srcs, src)
		if err != nil {
			return err
		}
		return src.scan(txn, before, p, q.collect(limit+1, &out))
	})
	e.queryReads.Add(q.read)
	if err != nil {
		return TxPage{}, err
	}
	next := ""
	switch {
	case len(out) > limit:
		next = base64.RawURLEncoding.EncodeToString(store.AppendUint64(nil, out[limit].seq+1))
		out = out[:limit]
	case q.resume != 0:
		next = base64.RawURLEncoding.EncodeToString(store.AppendUint64(nil, q.resume))
	}
	page := TxPage{Transactions: make([]Transaction, len(out)), NextPageToken: next}
	for i, t := range out {
		page.Transactions[i] = t.public(e.ids)
	}
	if q.resume != 0 && len(out) <= limit {
		page.SearchedFrom = time.Unix(0, q.resumeAt).UTC()
	}
	return page, nil
}

// validate reports the first filter field ListTransactions cannot use.
func (f *TxFilter) validate() error {
	switch {
	case f.BatchNumber != 0 && f.TerminalID == "":
		return &ValidationError{Field: "batch_number", Reason: "requires terminal_id"}
	case f.TerminalID != "" && cleanKeyPart(f.TerminalID) == "":
		return &ValidationError{Field: "terminal_id", Reason: "must be a terminal ID"}
	case f.MerchantID != "" && !isAlnum(f.MerchantID):
		return &ValidationError{Field: "merchant_id", Reason: "must be 1-15 letters and digits"}
	case f.StoreID != "" && f.MerchantID == "":
		return &ValidationError{Field: "store_id", Reason: "requires merchant_id"}
	case f.StoreID != "" && cleanKeyPart(f.StoreID) == "":
		return &ValidationError{Field: "store_id", Reason: "must be a store ID"}
	case f.ResponseCode != "" && !IsResponseCode(f.ResponseCode):
		return &ValidationError{Field: "response_code", Reason: "must be a response code the engine answers with, e.g. 51"}
	}
	return nil
}

// parseTxPageToken returns the sequence number a ListTransactions page
// token continues below; the first page ("") starts below the largest.
func parseTxPageToken(pageToken string) (before uint64, err error) {
	if pageToken == "" {
		return 1<<64 - 1, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(pageToken)
	if err != nil || len(b) != 8 || binary.BigEndian.Uint64(b) == 0 {
		return 0, ErrBadPageToken
	}
	return binary.BigEndian.Uint64(b), nil
}

// txCollector gathers the transactions of a ListTransactions page.
type txCollector struct {
	ctx context.Context
	f   *TxFilter
	// start is the filter's start time (unix nanoseconds); 0 when none.
	start int64
	// budget is how many more transactions one call may read; when it runs
	// out, resume is where the next page starts and resumeAt its decision
	// time.
	budget   int
	resume   uint64
	resumeAt int64
	// read counts the index keys and transactions read.
	read uint64
}

// probe returns what rules out the entries of src, an index, that cannot
// match without reading their transactions (see indexProbe): the other
// indexes of srcs and the filter's terminal. Nil when src is not an index
// or nothing else narrows it.
func (q *txCollector) probe(txn *store.Txn, srcs []txSource, src txSource) (*indexProbe, error) {
	if !src.index {
		return nil, nil
	}
	p := &indexProbe{terminal: q.f.TerminalID, from: 1, pass: q.pass}
	for _, s := range srcs {
		if s.index && !bytes.Equal(s.prefix, src.prefix) {
			p.others = append(p.others, s.prefix)
		}
	}
	if len(p.others) == 0 && p.terminal == "" {
		return nil, nil
	}
	if q.start != 0 {
		from, err := firstSeqAt(txn, q.start)
		if err != nil {
			return nil, err
		}
		p.from = from
	}
	return p, nil
}

// pass spends the budget of an index entry ruled out without reading its
// transaction, after reads key lookups (counted as at least one read, the
// entry's own); false when the budget is spent (the
// entry is then read, and the next page resumes from it).
func (q *txCollector) pass(reads int) bool {
	if q.budget <= 0 {
		return false
	}
	q.budget--
	q.read += uint64(max(reads, 1))
	return true
}

// collect returns a scan callback that gathers up to n matching
// transactions newest first into into; it stops at the start time
// (decision times follow ledger order).
func (q *txCollector) collect(n int, into *[]*tx) func(*tx) error {
	return func(t *tx) error {
		if err := q.ctx.Err(); err != nil {
			return err
		}
		if t.decided < q.start {
			return store.ErrStop
		}
		q.read++
		if q.budget--; q.budget < 0 {
			// Read enough for one call: the next page goes on from here.
			q.resume, q.resumeAt = t.seq+1, t.decided
			return store.ErrStop
		}
		if q.f.match(t) {
			*into = append(*into, t)
			if len(*into) == n {
				return store.ErrStop
			}
		}
		return nil
	}
}

// scanLedgerReverse calls fn for every transaction with a sequence number
// below before, newest first, following the commit chunks.
func scanLedgerReverse(txn *store.Txn, before uint64, fn func(*tx) error) error {
	var start []byte
	if before != 1<<64-1 {
		if before <= 1 {
			return nil
		}
		start = keyChunk(before - 1)
	}
	return txn.IterateReverse(prefixChunk, start, func(k, v []byte) error {
		c, err := decodeChunk(k, v)
		if err != nil {
			return err
		}
		for i := len(c.terminals) - 1; i >= 0; i-- {
			seq := c.first + uint64(i)
			if seq >= before {
				continue
			}
			v, err := txn.Get(keyTx(c.terminals[i], seq))
			if err != nil {
				return fmt.Errorf("payment: chunk %d lists transaction %d, unreadable: %w", c.first, seq, err)
			}
			t, err := decodeTx(v)
			if err != nil {
				return err
			}
			if err := fn(t); err != nil {
				return err
			}
		}
		return nil
	})
}

func (f *TxFilter) match(t *tx) bool {
	return (f.TerminalID == "" || t.terminal == f.TerminalID) &&
		(f.MerchantID == "" || t.merchant == f.MerchantID) &&
		(f.StoreID == "" || t.store == f.StoreID) &&
		(f.ResponseCode == "" || t.code == f.ResponseCode) &&
		(f.BatchNumber == 0 || t.batch == f.BatchNumber) &&
		(f.Decision == DecisionUnspecified || t.decision == f.Decision) &&
		(f.End.IsZero() || t.decided < f.End.UnixNano())
}

// addTo adds an approved transaction to settlement totals: a live sale or
// capture (as a sale), a live pre-auth not yet captured (as a hold), a
// reversed authorization, or a refund.
func (t *tx) addTo(s *BatchTotals) {
	if !t.approved() {
		return
	}
	if s.Currency == "" {
		s.Currency = t.currency
	}
	switch {
	case t.kind == TxKindRefund:
		s.RefundCount++
		s.RefundAmount += t.amount
	case t.reversed:
		s.ReversalCount++
		s.ReversalAmount += t.amount
	case t.kind == TxKindSale || t.kind == TxKindCapture:
		s.SaleCount++
		s.SaleAmount += t.amount
	case t.kind == TxKindPreauth && t.captured == 0:
		s.PreauthCount++
		s.PreauthAmount += t.amount
	}
}

// SettlementReport returns a merchant's totals for a business date
// ("YYYY-MM-DD"; empty means today in UTC): every transaction decided on that
// date in its store's time zone, and all the batches holding them. It reads
// what is durable.
func (e *Engine) SettlementReport(ctx context.Context, merchantID, businessDate string) (Settlement, error) {
	rep, _, err := e.SettlementReportPage(ctx, merchantID, businessDate, 0, "")
	return rep, err
}

// settlementBatchKey orders the batches of a settlement report and is its
// page token.
type settlementBatchKey struct {
	terminal string
	number   uint64
}

func (k settlementBatchKey) token() string {
	return k.terminal + "/" + strconv.FormatUint(k.number, 10)
}

func parseSettlementToken(tok string) (settlementBatchKey, error) {
	i := strings.LastIndexByte(tok, '/')
	if i <= 0 {
		return settlementBatchKey{}, &ValidationError{Field: "page_token", Reason: "is not a token this report returned"}
	}
	n, err := strconv.ParseUint(tok[i+1:], 10, 64)
	if err != nil {
		return settlementBatchKey{}, &ValidationError{Field: "page_token", Reason: "is not a token this report returned"}
	}
	return settlementBatchKey{tok[:i], n}, nil
}

// SettlementReportPage is SettlementReport with the batches paged: at most
// limit batches (0 means all) after pageToken (empty for the first page), and
// the token of the next page, empty on the last. Totals are always over the
// whole date, so a report of tens of thousands of batches is read in bounded
// pages with the same totals on each.
func (e *Engine) SettlementReportPage(ctx context.Context, merchantID, businessDate string, limit int, pageToken string) (Settlement, string, error) {
	if merchantID == "" || len(merchantID) > 15 || !isAlnum(merchantID) {
		return Settlement{}, "", &ValidationError{Field: "merchant_id", Reason: "must be 1-15 letters and digits"}
	}
	if businessDate == "" {
		businessDate = e.clock().UTC().Format(dateLayout)
	} else if d, err := time.Parse(dateLayout, businessDate); err != nil || d.Format(dateLayout) != businessDate {
		return Settlement{}, "", &ValidationError{Field: "business_date", Reason: "must be a date as YYYY-MM-DD"}
	}
	var after *settlementBatchKey
	if pageToken != "" {
		k, err := parseSettlementToken(pageToken)
		if err != nil {
			return Settlement{}, "", err
		}
		after = &k
	}
	next := ""
	rep := Settlement{MerchantID: merchantID, BusinessDate: businessDate, GenerateTime: e.clock().UTC()}
	err := e.db.View(func(txn *store.Txn) error {
		keys, err := settleDay(ctx, txn, &rep)
		if err != nil {
			return err
		}
		keys, next = pageSettlementBatches(keys, after, limit)
		for _, bk := range keys {
			b, err := loadBatch(txn, bk.terminal, bk.number)
			if err != nil {
				return err
			}
			rep.Batches = append(rep.Batches, b.summary())
		}
		return nil
	})
	if err != nil {
		return Settlement{}, "", err
	}
	return rep, next, nil
}

// settleDay adds the transactions of rep's merchant on rep's business date
// to rep's totals and returns the batches holding them, in order of first
// transaction.
func settleDay(ctx context.Context, txn *store.Txn, rep *Settlement) ([]settlementBatchKey, error) {
	day, _ := time.Parse(dateLayout, rep.BusinessDate)
	// Every time zone's day D lies between D 00:00 at UTC+14 and D+1 00:00
	// at UTC-12.
	lo := day.Add(-14 * time.Hour).UnixNano()
	hi := day.Add(36 * time.Hour).UnixNano()
	from, err := firstSeqAt(txn, lo)
	if err != nil {
		return nil, err
	}
	terms, err := merchantTerminals(txn, rep.MerchantID)
	if err != nil {
		return nil, err
	}
	seen := map[settlementBatchKey]bool{}
	var keys []settlementBatchKey
	for _, term := range terms {
		err := scanTerminal(txn, term, from, func(t *tx) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if t.decided >= hi {
				return store.ErrStop
			}
			if t.merchant != rep.MerchantID || t.date != rep.BusinessDate {
				return nil
			}
			t.addTo(&rep.Totals)
			if bk := (settlementBatchKey{t.terminal, t.batch}); !seen[bk] {
				seen[bk] = true
				keys = append(keys, bk)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// pageSettlementBatches sorts keys by terminal and number and returns the
// page of up to limit (all when limit <= 0) after the key after (nil for
// the first page), with the next page's token ("" on the last page).
func pageSettlementBatches(keys []settlementBatchKey, after *settlementBatchKey, limit int) (page []settlementBatchKey, next string) {
	order := func(a, b settlementBatchKey) int {
		return cmp.Or(cmp.Compare(a.terminal, b.terminal), cmp.Compare(a.number, b.number))
	}
	slices.SortFunc(keys, order)
	if after != nil {
		i, found := slices.BinarySearchFunc(keys, *after, order)
		if found {
			i++
		}
		keys = keys[i:]
	}
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
		next = keys[limit-1].token()
	}
	return keys, next
}

// merchantTerminals returns the terminals known to have transacted for the
// merchant.
func merchantTerminals(txn *store.Txn, merchant string) ([]string, error) {
	prefix := keyIndex(prefixMerchTerm, merchant)
	var terms []string
	err := txn.Iterate(prefix, nil, func(k, _ []byte) error {
		terms = append(terms, string(k[len(prefix):]))
		return nil
	})
	return terms, err
}

// Batch returns a terminal's batch as stored: the open batch when number is
// zero. ok is false when the terminal has no such batch.
func (e *Engine) Batch(ctx context.Context, terminalID string, number uint64) (b BatchSummary, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return BatchSummary{}, false, err
	}
	err = e.db.View(func(txn *store.Txn) error {
		var bs *batchState
		var err error
		if number == 0 {
			bs, err = loadOpenBatch(txn, terminalID)
		} else {
			bs, err = loadBatch(txn, terminalID, number)
		}
		if err != nil {
			return err
		}
		b, ok = bs.summary(), true
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return BatchSummary{}, false, nil
		}
		return BatchSummary{}, false, err
	}
	return b, ok, nil
}
