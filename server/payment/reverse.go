package payment

import (
	"errors"
	"strconv"
)

// A Reverse request is decided in the three steps of Authorize (see
// authorize.go): viewReverse, decideReverse (pure) and applyReverse.

// reverseView is the read-only view of one terminal's state, and of the
// authorization a Reverse names, that a Reverse decision reads. It has
// authView's contract, and the authorization is read under the same lock.
type reverseView struct {
	// entry is the idempotency entry of the request ID within the retention
	// period, from memory or disk; nil when none. When it is set, nothing
	// else is read.
	entry *entry
	// originalID is the original request ID as the state keys it.
	originalID reqID
	// original is the idempotency entry of the original request ID; nil
	// when none.
	original *entry
	// tombstone reports that an earlier Reverse already left a tombstone
	// for the unknown original; read only when original is nil.
	tombstone bool
	// auth is a copy of the transaction of the original when it is an
	// Authorize; nil otherwise. applyReverse marks it reversed and writes
	// it.
	auth *tx
	// openBatch is the number of the terminal's open batch; 0 when it has
	// none.
	openBatch uint64
}

// reverseDecision is the outcome of a Reverse decision: the answer and the
// effects applyReverse makes.
type reverseDecision struct {
	// replay: the request repeats the one the view's entry answered; it gets
	// that answer again, and nothing changes.
	replay bool
	// err, when set, fails the request (ErrRequestIDReused); nothing changes.
	err error
	// status is the answer. ReverseStatusReversed releases the
	// authorization's amount from the open batch's totals and the day's
	// approved amount.
	status ReverseStatus
	// leaveTomb: the original is unknown and has no tombstone yet; one is
	// written, so that the original is declined if it arrives later.
	leaveTomb bool
}

// decideReverse decides a Reverse request with fingerprint fp given the
// view v. It only reads its arguments.
func decideReverse(fp fingerprint, v *reverseView) reverseDecision {
	if v.entry != nil {
		if v.entry.replays(opReverse, fp) {
			return reverseDecision{replay: true}
		}
		return reverseDecision{err: ErrRequestIDReused}
	}
	var d reverseDecision
	switch auth := v.auth; {
	case v.original == nil:
		d.status, d.leaveTomb = ReverseStatusOriginalNotFound, !v.tombstone
	case v.original.kind != opAuthorize:
		d.status = ReverseStatusNotReversible
	case auth.reversed:
		d.status = ReverseStatusAlreadyReversed
	case !auth.approved() || auth.refunded > 0 || auth.captured > 0 || v.openBatch == 0 || auth.batch != v.openBatch:
		d.status = ReverseStatusNotReversible
	default:
		d.status = ReverseStatusReversed
	}
	return d
}

// reverse decides the Reverse request o at now and applies the decision.
func (e *Engine) reverse(o *op, c *commit, now int64) {
	r := &o.rev.req
	term, rid, en, ok := e.begin(o, c, r.TerminalID, r.RequestID, now)
	if !ok {
		return
	}
	v, err := e.viewReverse(term, en, r.OriginalRequestID, now)
	if err != nil {
		c.fail(o, err)
		return
	}
	d := decideReverse(o.fp, &v)
	e.applyReverse(o, c, term, rid, &v, d, now)
}

// viewReverse reads the view of term that a Reverse decision at now of
// the original request ID original needs, given the request ID's entry en
// (nil when none).
func (e *Engine) viewReverse(term *termState, en *entry, original string, now int64) (reverseView, error) {
	v := reverseView{entry: en}
	if en != nil {
		return v, nil
	}
	if term.batch != nil {
		v.openBatch = term.batch.number
	}
	v.originalID = e.st.req(original)
	var err error
	if v.original, err = e.lookupEntry(term, v.originalID, now); err != nil {
		return v, err
	}
	switch {
	case v.original == nil:
		v.tombstone, err = e.lookupTomb(term, v.originalID, now)
	case v.original.kind == opAuthorize:
		v.auth, err = e.getTx(v.original.txSeq, now)
		if err == nil && v.auth == nil {
			err = errors.New("payment: authorization " + strconv.FormatUint(v.original.txSeq, 10) + " missing from the ledger")
		}
	}
	return v, err
}

// applyReverse applies the decision d, made for o from the view v of term,
// to the in-memory state, stages its writes in c and sets o's answer.
func (e *Engine) applyReverse(o *op, c *commit, term *termState, rid reqID, v *reverseView, d reverseDecision, now int64) {
	st := e.st
	r := &o.rev.req
	switch {
	case d.replay:
		o.rev.res = v.entry.reverseResult(e.ids)
		o.rev.res.Replayed = true
		e.answer(o, c, v.entry.pending)
		return
	case d.err != nil:
		c.fail(o, d.err)
		return
	}
	res := &entry{entryRec: entryRec{kind: opReverse, fp: o.fp, created: now, status: d.status}}
	if v.auth != nil {
		res.authSeq = v.auth.seq
	}
	if d.leaveTomb {
		term.tombs[v.originalID.key] = tomb{created: now, pending: c.seq}
		st.entryCount++
		st.entryQ.push(expiring{at: now, term: term.idx, key: v.originalID.key, tomb: true})
		c.putTTL(keyTombstone(term.id, r.OriginalRequestID), encodeTombstone(now, r.RequestID), e.keyTTL(now, e.clock().UnixNano()))
		e.filterAdd(term.id, r.OriginalRequestID, true)
	}
	if d.status == ReverseStatusReversed {
		t := v.auth
		res.amount, res.currency = t.amount, newCurrencyCode(t.currency)
		t.reversed = true
		t.reversalReason = r.Reason
		t.reversalTime = now
		t.reversalRequest = r.RequestID
		b := term.batch
		if t.kind == TxKindSale {
			b.totals.SaleCount--
			b.totals.SaleAmount -= t.amount
		} else {
			b.totals.PreauthCount--
			b.totals.PreauthAmount -= t.amount
		}
		b.totals.ReversalCount++
		b.totals.ReversalAmount += t.amount
		c.markDirty(b)
		if _, ok := term.days[t.date]; ok {
			term.days[t.date] -= t.amount
		}
		e.writeTx(t, c)
	}
	e.addEntry(term, rid, res, c)
	c.decisions++
	o.rev.res = res.reverseResult(e.ids)
	c.hold(o)
}

// reverseResult is the answer a Reverse entry gives.
func (en *entry) reverseResult(ids *idCodec) ReverseResult {
	r := ReverseResult{Status: en.status, AuthorizationID: en.authID(ids)}
	if en.status == ReverseStatusReversed {
		r.ReversedAmount = Money{MinorUnits: en.amount, Currency: en.currency.String()}
	}
	return r
}
