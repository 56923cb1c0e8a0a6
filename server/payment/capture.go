package payment

import "time"

// A Capture request is decided in the three steps of Authorize (see
// authorize.go): the view, decideCapture (pure) and applyCapture.
//
// A capture (pre-auth completion) settles part or all of an approved,
// unreversed pre-auth of the same terminal, once, within
// Options.PreauthValidity of the pre-auth's decision. The capture is a
// transaction of its own, in the terminal's open batch, counted there as a
// sale; the amount of the pre-auth left uncaptured is released. A captured
// pre-auth is no longer a live hold and can no longer be reversed; it is
// refunded by its authorization ID, up to the captured amount.

// CaptureRequest asks to complete a pre-auth of the same terminal.
type CaptureRequest struct {
	TerminalID string
	// RequestID is the capture's own idempotency key.
	RequestID string
	// AuthorizationID is the pre-auth's authorization ID.
	AuthorizationID string
	// Amount to capture: positive, in the pre-auth's currency, at most its
	// amount.
	Amount Money
}

// CaptureResult is the engine's answer to a CaptureRequest.
type CaptureResult struct {
	// CaptureID is the capture's transaction ID: "C" and 32 upper-case hex
	// digits, with the properties of authorization IDs. Declined captures
	// get one too.
	CaptureID    string
	Decision     Decision
	ResponseCode string
	// AuthCode is the pre-auth's approval code, for approvals only.
	AuthCode string
	Message  string
	// ReleasedAmount is the part of the pre-auth that this capture did not
	// take and that is released; zero (and no currency) unless approved.
	ReleasedAmount Money
	BatchNumber    uint64
	Replayed       bool
	DecisionTime   time.Time
}

func (r *CaptureRequest) validate() error {
	return checkFollowUp(r.TerminalID, r.RequestID, r.AuthorizationID, r.Amount)
}

// captureView is the read-only view of one terminal's state, and of the
// pre-auth a Capture names, that a Capture decision reads. It has
// authView's contract, and the pre-auth is read under the same lock.
type captureView struct {
	// entry is the idempotency entry of the request ID within the retention
	// period, from memory or disk; nil when none. When it is set, nothing
	// else is read.
	entry *entry
	// tombstone reports that a Reverse named the request ID as its
	// original before it arrived (the terminal reversed a capture whose
	// outcome it did not know); read only when entry is nil.
	tombstone bool
	// preauth is a copy of the authorization the authorization ID names
	// when the terminal's merchant may see it (nil otherwise). applyCapture
	// records the captured amount in it and writes it.
	preauth *tx
	// date is the business date of the decision time in the store's time
	// zone.
	date string
	// now is the decision time (unix nanoseconds), for the pre-auth's
	// validity.
	now int64
}

// captureDecision is the outcome of a Capture decision: the answer's
// response code and the effects applyCapture makes.
type captureDecision struct {
	// replay: the request repeats the one the view's entry answered; it gets
	// that answer again, and nothing changes.
	replay bool
	// code is the response code; CodeApproved captures the amount: the
	// pre-auth is marked captured, the capture counts as a sale in the
	// open batch and the pre-auth's hold leaves it.
	code string
	// duplicate: the request ID was used for a different request (94). Its
	// declined capture is recorded, but it gets no idempotency entry.
	duplicate bool
	// consumeTomb: the request ID was reversed before it arrived (12); the
	// tombstone is removed, as for Authorize.
	consumeTomb bool
}

// decideCapture decides the Capture request r with fingerprint fp for a
// terminal under pol, given the view v; pre-auths are valid for validity
// after their decision. It only reads its arguments.
func decideCapture(r *CaptureRequest, fp fingerprint, pol *Policy, validity time.Duration, v *captureView) captureDecision {
	if v.entry.replays(opCapture, fp) {
		return captureDecision{replay: true}
	}
	d := captureDecision{code: CodeApproved}
	amount := r.Amount.MinorUnits
	pre := v.preauth
	switch {
	case v.entry != nil:
		d.code, d.duplicate = CodeDuplicateTransmission, true
	case v.tombstone:
		d.code, d.consumeTomb = CodeInvalidTransaction, true
	case pol.Suspended:
		d.code = CodeNotPermitted
	case pre == nil || pre.kind != TxKindPreauth || !pre.approved():
		d.code = CodeInvalidTransaction
	case pre.terminal != r.TerminalID:
		d.code = CodeNotPermitted
	case pre.reversed || pre.captured > 0 || v.now-pre.decided > int64(validity):
		d.code = CodeInvalidTransaction
	case amount <= 0 || amount > pre.amount || r.Amount.Currency != pre.currency:
		d.code = CodeInvalidAmount
	}
	return d
}

// capture decides the Capture request o at now and applies the decision.
func (e *Engine) capture(o *op, c *commit, now int64) {
	r := &o.capt.req
	term, rid, en, ok := e.begin(o, c, r.TerminalID, r.RequestID, now)
	if !ok {
		return
	}
	v := captureView{entry: en, date: term.businessDate(now, o.pol.Location), now: now}
	if en == nil {
		var err error
		if v.tombstone, err = e.lookupTomb(term, rid, now); err == nil {
			v.preauth, err = e.visibleAuthorization(r.AuthorizationID, o.pol.MerchantID, now)
		}
		if err != nil {
			c.fail(o, err)
			return
		}
	}
	d := decideCapture(r, o.fp, &o.pol, e.opts.PreauthValidity, &v)
	e.applyCapture(o, c, term, rid, &v, d, now)
}

// applyCapture applies the decision d, made for o from the view v of
// term, to the in-memory state, stages its writes in c and sets o's
// answer. Every decision but a replay records a capture transaction,
// declined ones included.
func (e *Engine) applyCapture(o *op, c *commit, term *termState, rid reqID, v *captureView, d captureDecision, now int64) {
	r := &o.capt.req
	pol := &o.pol
	if d.replay {
		o.capt.res = v.entry.captureResult(e.ids)
		o.capt.res.Replayed = true
		e.answer(o, c, v.entry.pending)
		return
	}
	if d.consumeTomb {
		e.consumeTomb(term, rid, c)
	}
	b := e.currentBatch(o, term, pol, c, now)
	t := &tx{
		kind:      TxKindCapture,
		terminal:  term.id,
		merchant:  pol.MerchantID,
		store:     pol.StoreID,
		requestID: r.RequestID,
		amount:    r.Amount.MinorUnits,
		currency:  r.Amount.Currency,
		decision:  DecisionDeclined,
		code:      d.code,
		batch:     b.number,
		date:      v.date,
		decided:   now,
		fp:        o.fp,
	}
	if pre := v.preauth; pre != nil {
		t.original = pre.seq
		t.maskedPAN, t.entryMode, t.tokenHash = pre.maskedPAN, pre.entryMode, pre.tokenHash
	}
	if d.code == CodeApproved {
		pre := v.preauth
		t.decision, t.authCode = DecisionApproved, pre.authCode
		t.remaining, t.remainingCur = pre.amount-t.amount, pre.currency
		pre.captured = t.amount
		e.writeTx(pre, c)
		b.totals.SaleCount++
		b.totals.SaleAmount += t.amount
		if pre.batch == b.number {
			// The pre-auth's hold leaves the batch. Its record changed
			// without a later transaction, so the batch is checkpointed
			// now, as for a reversal (see batchState).
			b.totals.PreauthCount--
			b.totals.PreauthAmount -= pre.amount
			c.markDirty(b)
		} else {
			e.st.changed(b)
		}
		if _, ok := term.days[pre.date]; ok {
			term.days[pre.date] -= t.remaining // the uncaptured part is released
		}
	}
	e.newTx(t, c, now)
	res := t.answer()
	if !d.duplicate {
		e.addEntry(term, rid, res, c)
	}
	o.capt.res = res.captureResult(e.ids)
	c.hold(o)
}

// dayAmount is what an approved, unreversed sale or pre-auth counts
// towards its business date's daily limit: its amount, or what a captured
// pre-auth's capture took.
func (t *tx) dayAmount() int64 {
	if t.kind == TxKindPreauth && t.captured > 0 {
		return t.captured
	}
	return t.amount
}

// captureResult is the answer a Capture entry gives.
func (en *entry) captureResult(ids *idCodec) CaptureResult {
	r := CaptureResult{
		CaptureID:    ids.id(TxKindCapture, en.txSeq),
		Decision:     en.decision,
		ResponseCode: en.code.String(),
		AuthCode:     en.authCode.String(),
		Message:      CodeMessage(en.code.String()),
		BatchNumber:  en.batch,
		DecisionTime: time.Unix(0, en.decided).UTC(),
	}
	if cur := en.currency.String(); cur != "" {
		r.ReleasedAmount = Money{MinorUnits: en.amount, Currency: cur}
	}
	return r
}
