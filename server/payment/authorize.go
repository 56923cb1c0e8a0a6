package payment

import (
	"time"

	"github.com/posfleet/posfleet/server/audit"
)

// An Authorize request is decided in three steps: viewAuthorize reads what
// the decision needs of the terminal's state into an authView,
// decideAuthorize (pure) turns the request, the terminal's policy and the
// view into an authDecision, and applyAuthorize applies the decision's
// effects to the state and stages its writes in the commit.

// authView is the read-only view of one terminal's state that an Authorize
// decision reads.
//
// Contract: the view is taken after the effects of every earlier decision
// of the terminal were applied, and nothing changes the terminal's state
// between taking the view and applying the decision made from it. The
// decision loop guarantees this by deciding one request at a time; a store
// that decides concurrently must take the view and apply the effects in one
// transaction that holds the terminal's lock (its row, for a SQL store).
// The decision never changes the view.
type authView struct {
	// entry is the idempotency entry of the request ID within the retention
	// period, from memory or disk; nil when none.
	entry *entry
	// tombstone reports that a Reverse named the request ID as its original
	// before it arrived, within the retention period. It is looked up only
	// when entry is nil.
	tombstone bool
	// date is the business date of the decision time in the store's time
	// zone.
	date string
	// dayApproved is the amount the terminal approved on date: sales and
	// pre-auths, less reversals.
	dayApproved int64
	// cardApprovals counts the card's approvals on the terminal within the
	// policy's velocity window, shortened to the retention period; 0 when
	// the policy has no velocity rule.
	cardApprovals int
}

// authDecision is the outcome of an Authorize decision: the answer's
// response code and the effects applyAuthorize makes.
type authDecision struct {
	// replay: the request repeats the one the view's entry answered; it gets
	// that answer again, and nothing changes.
	replay bool
	// code is the response code; CodeApproved approves, adding the amount
	// to the open batch's totals and the day's approved amount.
	code string
	// duplicate: the request ID was used for a different request (94). Its
	// declined transaction is recorded, but it gets no idempotency entry:
	// the request ID's entry stays the first request's.
	duplicate bool
	// consumeTomb: the request is the original of an earlier Reverse (12);
	// the tombstone is removed, so that only its first arrival is declined
	// this way.
	consumeTomb bool
	// mismatch, when not empty, is why the request is audited as a merchant
	// mismatch.
	mismatch string
	// trackCard: the approval counts towards the card's velocity.
	trackCard bool
}

// mismatchClaimed is the audited reason for a request whose claimed
// merchant is not the terminal's binding.
const mismatchClaimed = "claimed merchant is not the terminal's binding"

// decideAuthorize decides the Authorize request r with fingerprint fp for
// a terminal under pol, given the view v of the terminal's state. It only
// reads its arguments. The checks run in the order of the response-code
// table in the package documentation; the first that fails gives the code.
func decideAuthorize(r *AuthorizeRequest, fp fingerprint, pol *Policy, v *authView) authDecision {
	if v.entry.replays(opAuthorize, fp) {
		return authDecision{replay: true}
	}
	var d authDecision
	amount := r.Amount.MinorUnits
	switch {
	case v.entry != nil: // same request ID, different content
		d.code, d.duplicate = CodeDuplicateTransmission, true
	case v.tombstone:
		d.code, d.consumeTomb = CodeInvalidTransaction, true
	case pol.Suspended:
		d.code = CodeNotPermitted
	case r.MerchantID != pol.MerchantID:
		d.code, d.mismatch = CodeInvalidMerchant, mismatchClaimed
	case !mccConsistent(pol.MerchantID, pol.MerchantMCC):
		d.code, d.mismatch = CodeInvalidMerchant, "MCC embedded in the merchant ID differs from the merchant's MCC"
	case amount <= 0 || amount > MaxAmount || r.Amount.Currency != pol.MerchantCurrency:
		d.code = CodeInvalidAmount
	case !entryModeAccepted(pol.AcceptedEntryModes, r.Card.EntryMode):
		d.code = CodeInvalidTransaction
	case !pol.PerTransactionLimit.allows(amount):
		d.code = CodeExceedsAmountLimit
	case pol.DailyLimit.Set && amount > pol.DailyLimit.MinorUnits-v.dayApproved:
		d.code = CodeExceedsAmountLimit
	case pol.hasVelocityRule() && v.cardApprovals >= int(pol.VelocityLimit):
		d.code = CodeExceedsFrequency
	default:
		d.code = issuerCode(r.Card.Token)
	}
	if d.mismatch == "" && r.MerchantID != pol.MerchantID {
		// Audited whatever else declined the request first (a suspended
		// terminal, a reused request ID).
		d.mismatch = mismatchClaimed
	}
	d.trackCard = d.code == CodeApproved && pol.hasVelocityRule()
	return d
}

// replays reports whether a request of kind with fingerprint fp repeats
// the request that made the entry en; false when en is nil.
func (en *entry) replays(kind opKind, fp fingerprint) bool {
	return en != nil && en.kind == kind && en.fp == fp
}

// hasVelocityRule reports whether the policy limits approvals per card.
func (p *Policy) hasVelocityRule() bool { return p.VelocityLimit > 0 && p.VelocityWindow > 0 }

// authorize decides the Authorize request o at now and applies the
// decision.
func (e *Engine) authorize(o *op, c *commit, now int64) {
	r := &o.auth
	term, rid, en, ok := e.begin(o, c, r.TerminalID, r.RequestID, now)
	if !ok {
		return
	}
	v, err := e.viewAuthorize(term, rid, en, &o.pol, o.tokenHash, now)
	if err != nil {
		c.fail(o, err)
		return
	}
	d := decideAuthorize(r, o.fp, &o.pol, &v)
	e.applyAuthorize(o, c, term, rid, &v, d, now)
}

// viewAuthorize reads the view of term that an Authorize decision at now
// under pol needs, given the request ID's entry en (nil when none). The
// card is tokenHash.
func (e *Engine) viewAuthorize(term *termState, rid reqID, en *entry, pol *Policy, tokenHash uint64, now int64) (authView, error) {
	v := authView{entry: en, date: term.businessDate(now, pol.Location)}
	if en == nil {
		tomb, err := e.lookupTomb(term, rid, now)
		if err != nil {
			return v, err
		}
		v.tombstone = tomb
	}
	v.dayApproved = term.days[v.date]
	if pol.hasVelocityRule() {
		v.cardApprovals = term.velocityCount(tokenHash, now-int64(min(pol.VelocityWindow, e.opts.Retention)))
	}
	return v, nil
}

// applyAuthorize applies the decision d, made for o from the view v of
// term, to the in-memory state, stages its writes in c and sets o's
// answer. Every decision but a replay records a transaction, declined ones
// included.
func (e *Engine) applyAuthorize(o *op, c *commit, term *termState, rid reqID, v *authView, d authDecision, now int64) {
	st := e.st
	pol := &o.pol
	if d.replay {
		o.authRes = v.entry.authorizeResult(e.ids)
		o.authRes.Replayed = true
		e.answer(o, c, v.entry.pending)
		return
	}
	if d.consumeTomb {
		e.consumeTomb(term, rid, c)
	}
	b := e.currentBatch(o, term, pol, c, now)
	t := &tx{}
	*t = authorizationTx(o, term, b, v.date, d.code, now)
	e.authorizations.Add(1)
	if d.code == CodeApproved {
		e.approvals.Add(1)
		t.decision = DecisionApproved
		t.authCode = st.authCode()
		if t.kind == TxKindSale {
			b.totals.SaleCount++
			b.totals.SaleAmount += t.amount
		} else {
			b.totals.PreauthCount++
			b.totals.PreauthAmount += t.amount
		}
		st.changed(b)
		term.addDay(v.date, t.amount)
	}
	if d.trackCard {
		term.vel[o.tokenHash] = append(term.vel[o.tokenHash], now)
		st.velQ.push(expiring{at: now, term: term.idx, hash: o.tokenHash})
	}
	e.newTx(t, c, now)
	res := t.answer()
	if !d.duplicate {
		e.addEntry(term, rid, res, c)
	}
	o.authRes = res.authorizeResult(e.ids)
	if d.mismatch != "" {
		o.audits = append(o.audits, e.mismatchEvent(o, t, d.mismatch, now))
	}
	c.hold(o)
}

// authorizationTx returns the declined transaction of the Authorize
// request o of term with response code code, in batch b on business date
// date; applyAuthorize approves it. It returns a value so that the
// caller's copy can stay off the heap.
func authorizationTx(o *op, term *termState, b *batchState, date, code string, now int64) tx {
	r := &o.auth
	pol := &o.pol
	kind := TxKindSale
	if !r.Capture {
		kind = TxKindPreauth
	}
	currency := r.Amount.Currency
	if currency == pol.MerchantCurrency {
		currency = pol.MerchantCurrency // share one string across transactions
	}
	t := tx{
		kind:      kind,
		terminal:  term.id,
		merchant:  pol.MerchantID,
		store:     pol.StoreID,
		requestID: r.RequestID,
		amount:    r.Amount.MinorUnits,
		currency:  currency,
		decision:  DecisionDeclined,
		code:      code,
		maskedPAN: r.Card.MaskedPAN,
		entryMode: r.Card.EntryMode,
		tokenHash: o.tokenHash,
		batch:     b.number,
		date:      date,
		decided:   now,
		fp:        o.fp,
	}
	if !r.LocalTime.IsZero() {
		t.localTime = r.LocalTime.UnixNano()
	}
	if r.MerchantID != pol.MerchantID {
		t.claimedMerchant = r.MerchantID
	}
	return t
}

// consumeTomb removes the tombstone of the request ID rid, which declined
// its request: only the first arrival is declined this way.
func (e *Engine) consumeTomb(term *termState, rid reqID, c *commit) {
	if hasKey(term.tombs, rid.key) {
		delete(term.tombs, rid.key)
		e.st.entryCount--
	}
	c.del(keyTombstone(term.id, rid.id))
}

// mismatchEvent is the audit event of the Authorize request o, recorded as
// t, declined because its merchant does not match (reason).
func (e *Engine) mismatchEvent(o *op, t *tx, reason string, now int64) audit.Event {
	r := &o.auth
	pol := &o.pol
	return audit.Event{
		Type:       audit.MerchantMismatch,
		Time:       time.Unix(0, now),
		Actor:      "terminal:" + t.terminal,
		TerminalID: t.terminal,
		MerchantID: pol.MerchantID,
		StoreID:    pol.StoreID,
		Message:    "authorization declined: " + reason,
		Attributes: map[string]string{
			"claimed_merchant_id": r.MerchantID,
			"bound_merchant_id":   pol.MerchantID,
			"merchant_mcc":        pol.MerchantMCC,
			"request_id":          r.RequestID,
			"authorization_id":    e.ids.id(t.kind, t.seq),
			"response_code":       t.code,
		},
	}
}

// authorizeResult is the answer an Authorize entry gives.
func (en *entry) authorizeResult(ids *idCodec) AuthorizeResult {
	r := AuthorizeResult{
		AuthorizationID: ids.id(TxKindSale, en.txSeq),
		Decision:        en.decision,
		ResponseCode:    en.code.String(),
		AuthCode:        en.authCode.String(),
		Message:         CodeMessage(en.code.String()),
		BatchNumber:     en.batch,
		DecisionTime:    time.Unix(0, en.decided).UTC(),
	}
	return r
}

// mccConsistent reports whether a 15-digit numeric merchant ID (acquirer 3,
// region 4, MCC 4, sequence 4) embeds the merchant's MCC. Other merchant ID
// formats carry no MCC and are consistent.
func mccConsistent(merchantID, mcc string) bool {
	if len(merchantID) != 15 {
		return true
	}
	for i := 0; i < len(merchantID); i++ {
		if !isDigit(merchantID[i]) {
			return true
		}
	}
	return merchantID[7:11] == mcc
}

func entryModeAccepted(accepted []EntryMode, m EntryMode) bool {
	if len(accepted) == 0 {
		return true
	}
	for _, a := range accepted {
		if a == m {
			return true
		}
	}
	return false
}
