package payment

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/posfleet/posfleet/server/store"
)

// ListTransactions returns up to limit transactions matching f, newest first,
// and a token for the next page ("" on the last page). It reads what is
// durable: a transaction appears once its decision was committed. limit <= 0
// means 100.
func (e *Engine) ListTransactions(ctx context.Context, f TxFilter, limit int, pageToken string) ([]Transaction, string, error) {
	if f.BatchNumber != 0 && f.TerminalID == "" {
		return nil, "", &ValidationError{Field: "batch_number", Reason: "requires terminal_id"}
	}
	if f.TerminalID != "" && cleanKeyPart(f.TerminalID) == "" {
		return nil, "", &ValidationError{Field: "terminal_id", Reason: "must be a terminal ID"}
	}
	if f.MerchantID != "" && !isAlnum(f.MerchantID) {
		return nil, "", &ValidationError{Field: "merchant_id", Reason: "must be 1-15 letters and digits"}
	}
	if limit <= 0 {
		limit = 100
	}
	before := uint64(1<<64 - 1)
	if pageToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(pageToken)
		if err != nil || len(b) != 8 || binary.BigEndian.Uint64(b) == 0 {
			return nil, "", ErrBadPageToken
		}
		before = binary.BigEndian.Uint64(b)
	}
	var prefix []byte
	index := true
	switch {
	case f.TerminalID != "":
		prefix = keyIndex(prefixTxTerm, f.TerminalID)
	case f.MerchantID != "":
		prefix = keyIndex(prefixTxMerch, f.MerchantID)
	default:
		prefix, index = prefixTx, false
	}
	var start []byte
	if before != 1<<64-1 {
		start = store.AppendUint64(slices.Clip(prefix), before-1)
	}
	var out []Transaction
	next := ""
	err := e.db.View(func(txn *store.Txn) error {
		return txn.IterateReverse(prefix, start, func(k, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if index {
				seq := binary.BigEndian.Uint64(k[len(k)-8:])
				var err error
				if v, err = txn.Get(keyTx(seq)); err != nil {
					return fmt.Errorf("payment: index %q points at a missing transaction: %w", k, err)
				}
			}
			t, err := decodeTx(v)
			if err != nil {
				return err
			}
			if !f.Start.IsZero() && t.decided < f.Start.UnixNano() {
				return store.ErrStop // decision times follow ledger order
			}
			if !f.match(t) {
				return nil
			}
			if len(out) == limit {
				next = base64.RawURLEncoding.EncodeToString(store.AppendUint64(nil, t.seq+1))
				return store.ErrStop
			}
			out = append(out, t.public())
			return nil
		})
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

func (f *TxFilter) match(t *tx) bool {
	return (f.TerminalID == "" || t.terminal == f.TerminalID) &&
		(f.MerchantID == "" || t.merchant == f.MerchantID) &&
		(f.BatchNumber == 0 || t.batch == f.BatchNumber) &&
		(f.Decision == DecisionUnspecified || t.decision == f.Decision) &&
		(f.End.IsZero() || t.decided < f.End.UnixNano())
}

// addTo adds an approved transaction to settlement totals: a live sale or
// pre-auth, a reversed authorization, or a refund.
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
	case t.kind == TxKindSale:
		s.SaleCount++
		s.SaleAmount += t.amount
	case t.kind == TxKindPreauth:
		s.PreauthCount++
		s.PreauthAmount += t.amount
	}
}

// SettlementReport returns a merchant's totals for a business date
// ("YYYY-MM-DD"; empty means today in UTC): every transaction decided on that
// date in its store's time zone, and the batches holding them. It reads what
// is durable.
func (e *Engine) SettlementReport(ctx context.Context, merchantID, businessDate string) (Settlement, error) {
	if merchantID == "" || len(merchantID) > 15 || !isAlnum(merchantID) {
		return Settlement{}, &ValidationError{Field: "merchant_id", Reason: "must be 1-15 letters and digits"}
	}
	if businessDate == "" {
		businessDate = e.clock().UTC().Format(dateLayout)
	} else if d, err := time.Parse(dateLayout, businessDate); err != nil || d.Format(dateLayout) != businessDate {
		return Settlement{}, &ValidationError{Field: "business_date", Reason: "must be a date as YYYY-MM-DD"}
	}
	rep := Settlement{MerchantID: merchantID, BusinessDate: businessDate, GenerateTime: e.clock().UTC()}
	type batchKey struct {
		terminal string
		number   uint64
	}
	seen := map[batchKey]bool{}
	var keys []batchKey
	err := e.db.View(func(txn *store.Txn) error {
		err := txn.Iterate(keyIndex(prefixTxDate, merchantID, businessDate), nil, func(k, _ []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			seq := binary.BigEndian.Uint64(k[len(k)-8:])
			v, err := txn.Get(keyTx(seq))
			if err != nil {
				return fmt.Errorf("payment: index %q points at a missing transaction: %w", k, err)
			}
			t, err := decodeTx(v)
			if err != nil {
				return err
			}
			t.addTo(&rep.Totals)
			if bk := (batchKey{t.terminal, t.batch}); !seen[bk] {
				seen[bk] = true
				keys = append(keys, bk)
			}
			return nil
		})
		if err != nil {
			return err
		}
		slices.SortFunc(keys, func(a, b batchKey) int {
			return cmp.Or(cmp.Compare(a.terminal, b.terminal), cmp.Compare(a.number, b.number))
		})
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
		return Settlement{}, err
	}
	return rep, nil
}

// loadBatch reads a terminal's batch: the open one or a closed one.
func loadBatch(txn *store.Txn, terminal string, number uint64) (*batchState, error) {
	if v, err := txn.Get(keyOpenBatch(terminal)); err == nil {
		b, err := decodeBatch(v)
		if err != nil {
			return nil, err
		}
		if b.number == number {
			return b, nil
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	v, err := txn.Get(keyBatch(terminal, number))
	if err != nil {
		return nil, fmt.Errorf("payment: batch %d of terminal %s: %w", number, terminal, err)
	}
	return decodeBatch(v)
}

// Batch returns a terminal's batch as stored: the open batch when number is
// zero. ok is false when the terminal has no such batch.
func (e *Engine) Batch(ctx context.Context, terminalID string, number uint64) (b BatchSummary, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return BatchSummary{}, false, err
	}
	err = e.db.View(func(txn *store.Txn) error {
		if number == 0 {
			v, err := txn.Get(keyOpenBatch(terminalID))
			if err != nil {
				return err
			}
			bs, err := decodeBatch(v)
			if err != nil {
				return err
			}
			b, ok = bs.summary(), true
			return nil
		}
		bs, err := loadBatch(txn, terminalID, number)
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
