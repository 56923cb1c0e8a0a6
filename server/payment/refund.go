package payment

import "time"

// A Refund request is decided in the three steps of Authorize (see
// authorize.go): viewRefund, decideRefund (pure) and applyRefund.

// refundView is the read-only view of one terminal's state, and of the
// sale a Refund names, that a Refund decision reads. It has authView's
// contract, and the sale is read under the same lock: no other decision
// changes it between the view and applying the decision.
type refundView struct {
	// entry is the idempotency entry of the request ID within the retention
	// period, from memory or disk; nil when none.
	entry *entry
	// sale is a copy of the authorization (sale or pre-auth) the
	// authorization ID names when the terminal's merchant may see it (nil
	// when the ID is unknown, names a refund, a capture or another
	// merchant's transaction). It is not read for a replay. applyRefund
	// records the refunded amount in it and writes it.
	sale *tx
	// date is the business date of the decision time in the store's time
	// zone.
	date string
}

// refundDecision is the outcome of a Refund decision: the answer's response
// code and the effects applyRefund makes.
type refundDecision struct {
	// replay: the request repeats the one the view's entry answered; it gets
	// that answer again, and nothing changes.
	replay bool
	// code is the response code; CodeApproved refunds the amount from the
	// sale and adds it to the open batch's totals.
	code string
	// duplicate: the request ID was used for a different request (94). Its
	// declined refund is recorded, but it gets no idempotency entry.
	duplicate bool
}

// decideRefund decides the Refund request r with fingerprint fp for a
// terminal under pol, given the view v. It only reads its arguments.
func decideRefund(r *RefundRequest, fp fingerprint, pol *Policy, v *refundView) refundDecision {
	if v.entry.replays(opRefund, fp) {
		return refundDecision{replay: true}
	}
	d := refundDecision{code: CodeApproved}
	amount := r.Amount.MinorUnits
	sale := v.sale
	switch {
	case v.entry != nil:
		d.code, d.duplicate = CodeDuplicateTransmission, true
	case pol.Suspended:
		d.code = CodeNotPermitted
	case sale == nil || sale.settled() == 0:
		d.code = CodeInvalidTransaction
	case sale.terminal != r.TerminalID && !pol.CrossTerminalRefunds:
		d.code = CodeNotPermitted
	case amount <= 0 || amount > MaxAmount || r.Amount.Currency != sale.currency || amount > sale.settled()-sale.refunded:
		d.code = CodeInvalidAmount
	}
	return d
}

// refund decides the Refund request o at now and applies the decision.
func (e *Engine) refund(o *op, c *commit, now int64) {
	r := &o.ref.req
	term, rid, en, ok := e.begin(o, c, r.TerminalID, r.RequestID, now)
	if !ok {
		return
	}
	v := refundView{entry: en, date: term.businessDate(now, o.pol.Location)}
	if !en.replays(opRefund, o.fp) {
		var err error
		if v.sale, err = e.visibleAuthorization(r.AuthorizationID, o.pol.MerchantID, now); err != nil {
			c.fail(o, err)
			return
		}
	}
	d := decideRefund(r, o.fp, &o.pol, &v)
	e.applyRefund(o, c, term, rid, &v, d, now)
}

// visibleAuthorization returns a copy of the sale or pre-auth the
// authorization ID id names when the merchant may see it, else nil.
func (e *Engine) visibleAuthorization(id, merchant string, now int64) (*tx, error) {
	seq, prefix, ok := e.ids.parse(id)
	if !ok || prefix != idPrefix(TxKindSale) {
		return nil, nil
	}
	auth, err := e.getTx(seq, now)
	if err != nil {
		return nil, err
	}
	if auth != nil && (auth.merchant != merchant || (auth.kind != TxKindSale && auth.kind != TxKindPreauth)) {
		return nil, nil // another merchant's transactions are not visible
	}
	return auth, nil
}

// settled returns what an authorization put into settlement, the most
// that can be refunded on it: an approved, unreversed sale's amount, or
// what a pre-auth's capture settled; zero for anything else.
func (t *tx) settled() int64 {
	if !t.approved() || t.reversed {
		return 0
	}
	switch t.kind {
	case TxKindSale:
		return t.amount
	case TxKindPreauth:
		return t.captured
	}
	return 0
}

// applyRefund applies the decision d, made for o from the view v of term,
// to the in-memory state, stages its writes in c and sets o's answer.
// Every decision but a replay records a refund transaction, declined ones
// included.
func (e *Engine) applyRefund(o *op, c *commit, term *termState, rid reqID, v *refundView, d refundDecision, now int64) {
	r := &o.ref.req
	pol := &o.pol
	if d.replay {
		o.ref.res = v.entry.refundResult(e.ids)
		o.ref.res.Replayed = true
		e.answer(o, c, v.entry.pending)
		return
	}
	amount := r.Amount.MinorUnits
	sale := v.sale
	b := e.currentBatch(o, term, pol, c, now)
	t := &tx{
		kind:      TxKindRefund,
		terminal:  term.id,
		merchant:  pol.MerchantID,
		store:     pol.StoreID,
		requestID: r.RequestID,
		amount:    amount,
		currency:  r.Amount.Currency,
		decision:  DecisionDeclined,
		code:      d.code,
		batch:     b.number,
		date:      v.date,
		decided:   now,
	}
	if sale != nil {
		t.original = sale.seq
		t.maskedPAN = sale.maskedPAN
		t.entryMode = sale.entryMode
	}
	if d.code == CodeApproved {
		t.decision = DecisionApproved
		sale.refunded += amount
		e.writeTx(sale, c)
		b.totals.RefundCount++
		b.totals.RefundAmount += amount
		e.st.changed(b)
	}
	if sale != nil && (sale.kind == TxKindSale || sale.settled() > 0) {
		t.remainingCur = sale.currency
		t.remaining = max(sale.settled()-sale.refunded, 0)
	}
	t.fp = o.fp
	e.newTx(t, c, now)
	res := t.answer()
	if !d.duplicate {
		e.addEntry(term, rid, res, c)
	}
	o.ref.res = res.refundResult(e.ids)
	c.hold(o)
}

// refundResult is the answer a Refund entry gives.
func (en *entry) refundResult(ids *idCodec) RefundResult {
	return RefundResult{
		RefundID:            ids.id(TxKindRefund, en.txSeq),
		Decision:            en.decision,
		ResponseCode:        en.code.String(),
		Message:             CodeMessage(en.code.String()),
		RemainingRefundable: Money{MinorUnits: en.amount, Currency: en.currency.String()},
		BatchNumber:         en.batch,
		DecisionTime:        time.Unix(0, en.decided).UTC(),
	}
}
