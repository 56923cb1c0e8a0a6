package payment

import (
	"strconv"
	"time"

	"github.com/posfleet/posfleet/server/audit"
)

// A CloseBatch request is decided in the three steps of Authorize (see
// authorize.go): viewClose, decideClose (pure) and applyClose.

// closeView is the view of one terminal's state that a CloseBatch decision
// reads. It has authView's contract.
type closeView struct {
	// entry is the idempotency entry of the request ID within the retention
	// period, from memory or disk; nil when none. When it is set, nothing
	// else is read.
	entry *entry
	// batch is the terminal's open batch. Taking the view opens batch 1 for
	// a terminal that never had one, as every first request does, and
	// applies a rebind's pending close first (see currentBatch), so that a
	// close naming the batch the server closed gets BATCH_MISMATCH. The
	// decision only reads it; applyClose closes it.
	batch *batchState
}

// closeDecision is the outcome of a CloseBatch decision: the answer and the
// effects applyClose makes.
type closeDecision struct {
	// replay: the request repeats the one the view's entry answered; it gets
	// that answer again, and nothing changes.
	replay bool
	// err, when set, fails the request (ErrRequestIDReused or a
	// *BatchMismatchError); nothing changes.
	err error
	// totals are the terminal's totals, in the batch's currency when the
	// terminal named none.
	totals BatchTotals
	// inBalance: the terminal's totals match the server's. The batch is
	// closed either way, as BatchStateOutOfBalance when they differ.
	inBalance bool
}

// decideClose decides the CloseBatch request r with fingerprint fp given
// the view v. It only reads its arguments.
func decideClose(r *CloseBatchRequest, fp fingerprint, v *closeView) closeDecision {
	if en := v.entry; en != nil {
		if en.replays(opCloseBatch, fp) && en.close != nil {
			return closeDecision{replay: true}
		}
		return closeDecision{err: ErrRequestIDReused}
	}
	b := v.batch
	if r.BatchNumber != b.number {
		return closeDecision{err: &BatchMismatchError{Requested: r.BatchNumber, Open: b.number}}
	}
	tt := r.TerminalTotals
	if tt.Currency == "" {
		tt.Currency = b.totals.Currency
	}
	return closeDecision{totals: tt, inBalance: b.totals.Balances(tt) && tt.Currency == b.totals.Currency}
}

// closeBatch decides the CloseBatch request o at now and applies the
// decision.
func (e *Engine) closeBatch(o *op, c *commit, now int64) {
	r := &o.close.req
	term, rid, en, ok := e.begin(o, c, r.TerminalID, r.RequestID, now)
	if !ok {
		return
	}
	v := closeView{entry: en}
	if en == nil {
		v.batch = e.currentBatch(o, term, &o.pol, c, now)
	}
	d := decideClose(r, o.fp, &v)
	e.applyClose(o, c, term, rid, &v, d, now)
}

// applyClose applies the decision d, made for o from the view v of term:
// it closes the open batch, opens the next one, records the answer and
// audits the close.
func (e *Engine) applyClose(o *op, c *commit, term *termState, rid reqID, v *closeView, d closeDecision, now int64) {
	switch {
	case d.replay:
		o.close.res = *v.entry.close
		o.close.res.Replayed = true
		e.answer(o, c, v.entry.pending)
		return
	case d.err != nil:
		c.fail(o, d.err)
		return
	}
	b := v.batch
	state := BatchStateClosed
	if !d.inBalance {
		state = BatchStateOutOfBalance
	}
	b.termTotals = d.totals
	next := rollBatch(term, b, state, &o.pol, c, now)
	res := &CloseBatchResult{
		BatchNumber:     b.number,
		ServerTotals:    b.totals,
		InBalance:       d.inBalance,
		NextBatchNumber: next.number,
		CloseTime:       time.Unix(0, now).UTC(),
	}
	e.addEntry(term, rid, &entry{entryRec: entryRec{kind: opCloseBatch, fp: o.fp, created: now}, close: res}, c)
	c.decisions++
	o.close.res = *res
	o.audits = append(o.audits, closeEvent(term, b, o.close.req.RequestID, d, now))
	c.hold(o)
}

// closeEvent is the audit event of the batch b of term, closed at now by
// the request requestID as d decided.
func closeEvent(term *termState, b *batchState, requestID string, d closeDecision, now int64) audit.Event {
	typ, msg := audit.BatchClosed, "batch closed in balance"
	if !d.inBalance {
		typ, msg = audit.BatchOutOfBalance, "batch closed out of balance"
	}
	s, tt := &b.totals, &d.totals
	return audit.Event{
		Type:       typ,
		Time:       time.Unix(0, now),
		Actor:      "terminal:" + term.id,
		TerminalID: term.id,
		MerchantID: b.merchant,
		StoreID:    b.store,
		Message:    msg,
		Attributes: map[string]string{
			"batch_number":          strconv.FormatUint(b.number, 10),
			"request_id":            requestID,
			"currency":              s.Currency,
			"server_sale_count":     strconv.FormatUint(s.SaleCount, 10),
			"server_sale_amount":    strconv.FormatInt(s.SaleAmount, 10),
			"server_refund_count":   strconv.FormatUint(s.RefundCount, 10),
			"server_refund_amount":  strconv.FormatInt(s.RefundAmount, 10),
			"server_reversal_count": strconv.FormatUint(s.ReversalCount, 10),
			"terminal_sale_count":   strconv.FormatUint(tt.SaleCount, 10),
			"terminal_sale_amount":  strconv.FormatInt(tt.SaleAmount, 10),
			"terminal_refund_count": strconv.FormatUint(tt.RefundCount, 10),
		},
	}
}
