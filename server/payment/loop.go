package payment

import (
	"errors"
	"strconv"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store"
)

// loop is the decision loop: it decides requests one at a time in arrival
// order against the in-memory state, gathers the decisions into a commit
// while the writer is busy with the previous one, and hands the commit over
// as soon as the writer is free. It exits after Close once everything queued
// has been decided and committed.
func (e *Engine) loop() {
	defer close(e.loopDone)
	st := e.st
	tick := time.NewTicker(e.opts.HousekeepingInterval)
	defer tick.Stop()
	cur := st.newCommit()
	idle := true // the writer waits for a commit
	ops := e.ops
	for {
		if ops == nil && idle && cur.empty() {
			break
		}
		in := ops
		if cur.full(&e.opts) {
			in = nil // wait for the writer before deciding more
		}
		select {
		case o, ok := <-in:
			if !ok {
				ops = nil
				break
			}
			e.decide(o, cur)
			if !e.gather(cur) {
				ops = nil
			}
		case <-e.idle:
			idle = true
		case <-tick.C:
			e.housekeep(cur)
		}
		if ops == nil && len(st.unsaved) > 0 && !e.opts.noCheckpoints {
			e.checkpoint(cur) // closing: save the open batches' totals
		}
		if idle && !cur.empty() {
			cur.seal(st.nextSeq-1, &st.head)
			e.commits <- cur
			idle = false
			cur = st.newCommit()
		}
	}
	close(e.commits)
}

// gather decides the requests already queued, without waiting, until the
// commit is full. It returns false when the queue was closed.
func (e *Engine) gather(cur *commit) bool {
	for !cur.full(&e.opts) {
		select {
		case o, ok := <-e.ops:
			if !ok {
				return false
			}
			e.decide(o, cur)
		default:
			return true
		}
	}
	return true
}

// now returns the decision time: the clock, but never earlier than the
// previous decision.
func (e *Engine) now() int64 {
	t := e.clock().UnixNano()
	if t < e.st.last {
		t = e.st.last
	}
	e.st.last = t
	return t
}

func (e *Engine) decide(o *op, c *commit) {
	if e.failed.Load() {
		o.err = ErrUnavailable
		o.done <- struct{}{}
		return
	}
	now := e.now()
	switch o.kind {
	case opAuthorize:
		e.decideAuthorize(o, c, now)
	case opReverse:
		e.decideReverse(o, c, now)
	case opRefund:
		e.decideRefund(o, c, now)
	case opCloseBatch:
		e.decideClose(o, c, now)
	case opHousekeep:
		e.housekeep(c)
		c.hold(o)
	}
}

// hold makes o wait for c: its answer depends on c's writes or on writes
// not yet durable.
func (c *commit) hold(o *op) { c.ops = append(c.ops, o) }

// answer releases o now when everything its answer depends on is durable,
// else with c.
func (e *Engine) answer(o *op, c *commit, dependsOn uint64) {
	if dependsOn <= e.durable.Load() {
		o.done <- struct{}{}
		return
	}
	c.hold(o)
}

// fail answers o with err once c is durable (err may depend on c's state).
func (c *commit) fail(o *op, err error) {
	o.err = err
	c.hold(o)
}

// begin starts deciding o: the terminal's state, the request ID and its
// idempotency entry (nil when none). When the lookup fails it fails o and
// reports false.
func (e *Engine) begin(o *op, c *commit, terminal, requestID string, now int64) (*termState, reqID, *entry, bool) {
	ts, err := e.terminal(terminal, &o.pol, now)
	rid := e.st.req(requestID)
	var en *entry
	if err == nil {
		en, err = e.lookupEntry(ts, rid, now)
	}
	if err != nil {
		c.fail(o, err)
		return nil, rid, nil, false
	}
	return ts, rid, en, true
}

// lookupEntry finds the idempotency entry of the request ID, in memory or, when
// entries of the retention period were dropped early, on disk.
func (e *Engine) lookupEntry(ts *termState, rid reqID, now int64) (*entry, error) {
	if en := ts.entry(rid.key); en != nil {
		return en, nil
	}
	cutoff := now - int64(e.opts.Retention)
	if e.st.evictedUntil < cutoff || e.filterAbsent(ts.id, rid.id, false, cutoff) {
		return nil, nil
	}
	e.st.diskLookups++
	var en *entry
	err := e.db.View(func(txn *store.Txn) error {
		var err error
		var scanned bool
		en, scanned, err = findEntry(txn, ts.id, rid.id, cutoff, e.st.indexedSince)
		if scanned {
			e.st.entryScans++
		}
		return err
	})
	return en, err
}

// lookupTomb reports whether a tombstone for the request ID exists.
func (e *Engine) lookupTomb(ts *termState, rid reqID, now int64) (bool, error) {
	if _, ok := ts.tombs[rid.key]; ok {
		return true, nil
	}
	cutoff := now - int64(e.opts.Retention)
	if e.st.evictedUntil < cutoff || e.filterAbsent(ts.id, rid.id, true, cutoff) {
		return false, nil
	}
	e.st.diskLookups++
	v, err := e.db.Get(keyTombstone(ts.id, rid.id))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	created, err := decodeTombstone(v)
	return err == nil && created >= cutoff, err
}

// getTx returns the transaction with seq from memory or disk, or nil.
// The transaction is a copy: a decision that changes it writes it back
// with writeTx.
func (e *Engine) getTx(seq uint64, now int64) (*tx, error) {
	st := e.st
	if ct, ok := st.txs[seq]; ok {
		return decodeTx(ct.rec)
	}
	if seq == 0 || seq >= st.nextSeq {
		return nil, nil
	}
	var t *tx
	err := e.db.View(func(txn *store.Txn) error {
		var err error
		t, err = loadTx(txn, seq)
		return err
	})
	if err != nil || t == nil {
		return nil, err
	}
	st.cacheTx(t, now)
	return t, nil
}

// cacheTx holds the durable transaction t in memory from now on.
func (st *state) cacheTx(t *tx, now int64) {
	st.txs[t.seq] = cachedTx{rec: t.encode(), touched: now}
	st.txQ.push(expiringTx{at: now, seq: t.seq})
}

// newTx assigns the next ledger number to t and writes it.
func (e *Engine) newTx(t *tx, c *commit, now int64) {
	st := e.st
	t.seq = st.nextSeq
	st.nextSeq++
	st.txs[t.seq] = cachedTx{touched: now}
	st.txQ.push(expiringTx{at: now, seq: t.seq})
	e.writeTx(t, c)
	indexTx(t, c)
	c.createdTx(t)
	c.decisions++
	if known := st.merchTerms[t.merchant]; !known[t.terminal] {
		if known == nil {
			known = map[string]bool{}
			st.merchTerms[t.merchant] = known
		}
		known[t.terminal] = true
		c.put(keyMerchTerm(t.merchant, t.terminal), nil)
	}
}

// writeTx stages t's record in c and makes it the cached version (t was
// created by newTx or read by getTx, so it is cached).
func (e *Engine) writeTx(t *tx, c *commit) {
	rec := t.encode()
	c.put(keyTx(t.terminal, t.seq), rec)
	ct := e.st.txs[t.seq]
	ct.rec, ct.pending = rec, c.seq
	e.st.txs[t.seq] = ct
}

// addEntry records the request ID's entry in memory and in c: for the kinds
// without a transaction record of their own (Reverse, CloseBatch) the entry,
// for the others (Authorize, Refund) a request index pointing to their
// transaction, so that an entry dropped from memory early is found on disk
// with a point lookup. Either key expires on its own (keyTTL).
func (e *Engine) addEntry(ts *termState, rid reqID, en *entry, c *commit) {
	en.pending = c.seq
	ts.entries[rid.key] = en.entryRec
	if en.close != nil {
		ts.closes[rid.key] = en.close
	}
	e.st.entryCount++
	e.st.entryQ.push(expiring{at: en.created, term: ts.idx, key: rid.key})
	e.filterAdd(ts.id, rid.id, false)
	ttl := e.keyTTL(en.created, e.clock().UnixNano())
	if en.kind == opReverse || en.kind == opCloseBatch {
		c.putTTL(keyRequest(ts.id, rid.id), en.encode(), ttl)
	} else {
		c.putTTL(keyReqIndex(ts.id, rid.id), encodeReqIndex(en.created, en.txSeq), ttl)
	}
}

// expiryMargin is how much longer than the retention period the store keeps
// idempotency records and tombstones. The engine decides expiry itself (a
// record older than the retention period is ignored); the store's expiry,
// counted in whole seconds on the machine's clock, only has to come later
// (see keyTTL for a clock stepped back), also for a clock stepped forward
// between the write and the read.
const expiryMargin = time.Hour

// keyTTL returns how long the store keeps an idempotency record or
// tombstone created at created (engine time), written when the machine's
// clock reads now: so that no delete is ever needed for them, neither for
// those that expire in memory nor for those dropped from memory early. The
// store counts the TTL from its own reading of the clock, which is behind
// the engine's time after the clock was stepped back (the engine's time
// never goes back), so now must be the clock, not the engine's time. A
// record already past its expiry gets a TTL of a second, never none.
func (e *Engine) keyTTL(created, now int64) time.Duration {
	return max(time.Duration(created-now)+e.opts.Retention+expiryMargin, time.Second)
}

// changed notes that an open batch's totals changed by a new transaction
// of its terminal: the record is checkpointed later (see batchState).
func (st *state) changed(b *batchState) {
	if !b.unsaved {
		b.unsaved = true
		st.unsaved = append(st.unsaved, b)
	}
}

// checkpoint writes the totals of the open batches changed since their
// record was last written, as many as fit in c; the others stay listed for
// a later commit.
func (e *Engine) checkpoint(c *commit) {
	st := e.st
	n := 0
	for n < len(st.unsaved) && !c.full(&e.opts) {
		if b := st.unsaved[n]; b.unsaved && b.state == BatchStateOpen {
			c.markDirty(b)
		}
		n++
	}
	rest := copy(st.unsaved, st.unsaved[n:])
	clear(st.unsaved[rest:])
	st.unsaved = st.unsaved[:rest]
}

// openBatch returns the terminal's open batch, opening batch 1 for a
// terminal that never had one.
func (e *Engine) openBatch(ts *termState, pol *Policy, c *commit, now int64) *batchState {
	if ts.batch == nil {
		ts.batch = newBatch(ts, pol, 1, now)
		c.markDirty(ts.batch)
	}
	return ts.batch
}

// newBatch returns batch number of terminal ts, open under pol.
func newBatch(ts *termState, pol *Policy, number uint64, now int64) *batchState {
	return &batchState{
		terminal: ts.id,
		merchant: pol.MerchantID,
		store:    pol.StoreID,
		number:   number,
		state:    BatchStateOpen,
		totals:   BatchTotals{Currency: pol.MerchantCurrency},
		openTime: now,
	}
}

// rollBatch closes the terminal's open batch b in state and opens the next
// one under pol.
func rollBatch(ts *termState, b *batchState, state BatchState, pol *Policy, c *commit, now int64) *batchState {
	b.state, b.closeTime = state, now
	c.markDirty(b)
	ts.batch = newBatch(ts, pol, b.number+1, now)
	c.markDirty(ts.batch)
	return ts.batch
}

// currentBatch returns the open batch that a new transaction of the
// terminal under pol goes into. A batch belongs to one merchant, store and
// currency: when the terminal was rebound, or its merchant's currency
// changed, since its batch opened, an empty batch takes the new binding,
// and one holding transactions is closed as the server counted it (not
// reconciled with the terminal's totals; audited) and the next one opens.
// Otherwise the old batch would mix two merchants' or two currencies'
// sales, in its totals and in both merchants' settlement reports.
func (e *Engine) currentBatch(o *op, ts *termState, pol *Policy, c *commit, now int64) *batchState {
	b := e.openBatch(ts, pol, c, now)
	if b.merchant == pol.MerchantID && b.store == pol.StoreID && b.totals.Currency == pol.MerchantCurrency {
		return b
	}
	if b.totals == (BatchTotals{Currency: b.totals.Currency}) {
		b.merchant, b.store, b.totals.Currency = pol.MerchantID, pol.StoreID, pol.MerchantCurrency
		c.markDirty(b)
		return b
	}
	next := rollBatch(ts, b, BatchStateClosed, pol, c, now)
	o.audits = append(o.audits, audit.Event{
		Type:       audit.BatchClosed,
		Time:       time.Unix(0, now),
		Actor:      "system",
		TerminalID: ts.id,
		MerchantID: b.merchant,
		StoreID:    b.store,
		Message:    "batch closed by the server: the terminal's merchant, store or currency changed",
		Attributes: map[string]string{
			"batch_number":      strconv.FormatUint(b.number, 10),
			"next_batch_number": strconv.FormatUint(next.number, 10),
			"currency":          b.totals.Currency,
			"new_merchant_id":   pol.MerchantID,
			"new_store_id":      pol.StoreID,
			"new_currency":      pol.MerchantCurrency,
		},
	})
	return next
}

func (e *Engine) decideAuthorize(o *op, c *commit, now int64) {
	st := e.st
	r := &o.auth
	pol := &o.pol
	ts, rid, en, ok := e.begin(o, c, r.TerminalID, r.RequestID, now)
	if !ok {
		return
	}
	if en != nil && en.kind == opAuthorize && en.fp == o.fp {
		o.authRes = en.authorizeResult(e.ids)
		o.authRes.Replayed = true
		e.answer(o, c, en.pending)
		return
	}
	duplicate := en != nil // same request ID, different content: 94
	amount := r.Amount.MinorUnits
	date := ts.businessDate(now, pol.Location)
	code := CodeApproved
	var mismatch string
	if duplicate {
		code = CodeDuplicateTransmission
	} else if tomb, err := e.lookupTomb(ts, rid, now); err != nil {
		c.fail(o, err)
		return
	} else {
		switch {
		case tomb:
			code = CodeInvalidTransaction
			if hasKey(ts.tombs, rid.key) {
				delete(ts.tombs, rid.key)
				st.entryCount--
			}
			c.del(keyTombstone(ts.id, r.RequestID))
		case pol.Suspended:
			code = CodeNotPermitted
		case r.MerchantID != pol.MerchantID:
			code, mismatch = CodeInvalidMerchant, "claimed merchant is not the terminal's binding"
		case !mccConsistent(pol.MerchantID, pol.MerchantMCC):
			code, mismatch = CodeInvalidMerchant, "MCC embedded in the merchant ID differs from the merchant's MCC"
		case amount <= 0 || amount > MaxAmount || r.Amount.Currency != pol.MerchantCurrency:
			code = CodeInvalidAmount
		case !entryModeAccepted(pol.AcceptedEntryModes, r.Card.EntryMode):
			code = CodeInvalidTransaction
		case !pol.PerTransactionLimit.allows(amount):
			code = CodeExceedsAmountLimit
		case pol.DailyLimit.Set && amount > pol.DailyLimit.MinorUnits-ts.days[date]:
			code = CodeExceedsAmountLimit
		case pol.VelocityLimit > 0 && pol.VelocityWindow > 0 &&
			ts.velocityCount(o.tokenHash, now-int64(min(pol.VelocityWindow, e.opts.Retention))) >= int(pol.VelocityLimit):
			code = CodeExceedsFrequency
		default:
			code = issuerCode(r.Card.Token)
		}
	}
	if mismatch == "" && r.MerchantID != pol.MerchantID {
		// Audited whatever else declined the request first (a suspended
		// terminal, a reused request ID).
		mismatch = "claimed merchant is not the terminal's binding"
	}

	b := e.currentBatch(o, ts, pol, c, now)
	kind := TxKindSale
	if !r.Capture {
		kind = TxKindPreauth
	}
	currency := r.Amount.Currency
	if currency == pol.MerchantCurrency {
		currency = pol.MerchantCurrency // share one string across transactions
	}
	t := &tx{
		kind:      kind,
		terminal:  ts.id,
		merchant:  pol.MerchantID,
		store:     pol.StoreID,
		requestID: r.RequestID,
		amount:    amount,
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
	e.authorizations.Add(1)
	if code == CodeApproved {
		e.approvals.Add(1)
		t.decision = DecisionApproved
		t.authCode = st.authCode()
		if kind == TxKindSale {
			b.totals.SaleCount++
			b.totals.SaleAmount += amount
		} else {
			b.totals.PreauthCount++
			b.totals.PreauthAmount += amount
		}
		st.changed(b)
		ts.addDay(date, amount)
		if pol.VelocityLimit > 0 && pol.VelocityWindow > 0 {
			ts.vel[o.tokenHash] = append(ts.vel[o.tokenHash], now)
			st.velQ.push(expiring{at: now, term: ts.idx, hash: o.tokenHash})
		}
	}
	e.newTx(t, c, now)
	res := t.answer()
	if !duplicate {
		e.addEntry(ts, rid, res, c)
	}
	o.authRes = res.authorizeResult(e.ids)
	if mismatch != "" {
		o.audits = append(o.audits, audit.Event{
			Type:       audit.MerchantMismatch,
			Time:       time.Unix(0, now),
			Actor:      "terminal:" + ts.id,
			TerminalID: ts.id,
			MerchantID: pol.MerchantID,
			StoreID:    pol.StoreID,
			Message:    "authorization declined: " + mismatch,
			Attributes: map[string]string{
				"claimed_merchant_id": r.MerchantID,
				"bound_merchant_id":   pol.MerchantID,
				"merchant_mcc":        pol.MerchantMCC,
				"request_id":          r.RequestID,
				"authorization_id":    e.ids.id(t.kind, t.seq),
				"response_code":       code,
			},
		})
	}
	c.hold(o)
}

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

func (e *Engine) decideReverse(o *op, c *commit, now int64) {
	st := e.st
	r := &o.rev.req
	ts, rid, en, ok := e.begin(o, c, r.TerminalID, r.RequestID, now)
	if !ok {
		return
	}
	if en != nil {
		if en.kind == opReverse && en.fp == o.fp {
			o.rev.res = en.reverseResult(e.ids)
			o.rev.res.Replayed = true
			e.answer(o, c, en.pending)
			return
		}
		c.fail(o, ErrRequestIDReused)
		return
	}
	orid := st.req(r.OriginalRequestID)
	orig, err := e.lookupEntry(ts, orid, now)
	if err != nil {
		c.fail(o, err)
		return
	}
	res := &entry{entryRec: entryRec{kind: opReverse, fp: o.fp, created: now}}
	switch {
	case orig == nil:
		res.status = ReverseStatusOriginalNotFound
		if ok, err := e.lookupTomb(ts, orid, now); err != nil {
			c.fail(o, err)
			return
		} else if !ok {
			ts.tombs[orid.key] = tomb{created: now, pending: c.seq}
			st.entryCount++
			st.entryQ.push(expiring{at: now, term: ts.idx, key: orid.key, tomb: true})
			c.putTTL(keyTombstone(ts.id, r.OriginalRequestID), encodeTombstone(now, r.RequestID), e.keyTTL(now, e.clock().UnixNano()))
			e.filterAdd(ts.id, r.OriginalRequestID, true)
		}
	case orig.kind != opAuthorize:
		res.status = ReverseStatusNotReversible
	default:
		t, err := e.getTx(orig.txSeq, now)
		if err != nil {
			c.fail(o, err)
			return
		}
		if t == nil {
			c.fail(o, errors.New("payment: authorization "+strconv.FormatUint(orig.txSeq, 10)+" missing from the ledger"))
			return
		}
		res.authSeq = t.seq
		switch {
		case t.reversed:
			res.status = ReverseStatusAlreadyReversed
		case !t.approved() || t.refunded > 0 || ts.batch == nil || t.batch != ts.batch.number:
			res.status = ReverseStatusNotReversible
		default:
			res.status = ReverseStatusReversed
			res.amount, res.currency = t.amount, newCurrencyCode(t.currency)
			t.reversed = true
			t.reversalReason = r.Reason
			t.reversalTime = now
			t.reversalRequest = r.RequestID
			b := ts.batch
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
			if _, ok := ts.days[t.date]; ok {
				ts.days[t.date] -= t.amount
			}
			e.writeTx(t, c)
		}
	}
	e.addEntry(ts, rid, res, c)
	c.decisions++
	o.rev.res = res.reverseResult(e.ids)
	c.hold(o)
}

func (en *entry) reverseResult(ids *idCodec) ReverseResult {
	r := ReverseResult{Status: en.status, AuthorizationID: en.authID(ids)}
	if en.status == ReverseStatusReversed {
		r.ReversedAmount = Money{MinorUnits: en.amount, Currency: en.currency.String()}
	}
	return r
}

func (e *Engine) decideRefund(o *op, c *commit, now int64) {
	st := e.st
	r := &o.ref.req
	pol := &o.pol
	ts, rid, en, ok := e.begin(o, c, r.TerminalID, r.RequestID, now)
	if !ok {
		return
	}
	if en != nil && en.kind == opRefund && en.fp == o.fp {
		o.ref.res = en.refundResult(e.ids)
		o.ref.res.Replayed = true
		e.answer(o, c, en.pending)
		return
	}
	duplicate := en != nil
	amount := r.Amount.MinorUnits
	var sale *tx
	if seq, refund, ok := e.ids.parse(r.AuthorizationID); ok && !refund {
		var err error
		if sale, err = e.getTx(seq, now); err != nil {
			c.fail(o, err)
			return
		}
		if sale != nil && (sale.merchant != pol.MerchantID || sale.kind == TxKindRefund) {
			sale = nil // another merchant's transactions are not visible
		}
	}
	code := CodeApproved
	switch {
	case duplicate:
		code = CodeDuplicateTransmission
	case pol.Suspended:
		code = CodeNotPermitted
	case sale == nil || sale.kind != TxKindSale || !sale.approved() || sale.reversed:
		code = CodeInvalidTransaction
	case sale.terminal != ts.id && !pol.CrossTerminalRefunds:
		code = CodeNotPermitted
	case amount <= 0 || amount > MaxAmount || r.Amount.Currency != sale.currency || amount > sale.amount-sale.refunded:
		code = CodeInvalidAmount
	}
	b := e.currentBatch(o, ts, pol, c, now)
	t := &tx{
		kind:      TxKindRefund,
		terminal:  ts.id,
		merchant:  pol.MerchantID,
		store:     pol.StoreID,
		requestID: r.RequestID,
		amount:    amount,
		currency:  r.Amount.Currency,
		decision:  DecisionDeclined,
		code:      code,
		batch:     b.number,
		date:      ts.businessDate(now, pol.Location),
		decided:   now,
	}
	if sale != nil {
		t.original = sale.seq
		t.maskedPAN = sale.maskedPAN
		t.entryMode = sale.entryMode
	}
	if code == CodeApproved {
		t.decision = DecisionApproved
		sale.refunded += amount
		e.writeTx(sale, c)
		b.totals.RefundCount++
		b.totals.RefundAmount += amount
		st.changed(b)
	}
	if sale != nil && sale.kind == TxKindSale {
		t.remainingCur = sale.currency
		if sale.approved() && !sale.reversed {
			t.remaining = sale.amount - sale.refunded
		}
	}
	t.fp = o.fp
	e.newTx(t, c, now)
	res := t.answer()
	if !duplicate {
		e.addEntry(ts, rid, res, c)
	}
	o.ref.res = res.refundResult(e.ids)
	c.hold(o)
}

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

func (e *Engine) decideClose(o *op, c *commit, now int64) {
	r := &o.close.req
	pol := &o.pol
	ts, rid, en, ok := e.begin(o, c, r.TerminalID, r.RequestID, now)
	if !ok {
		return
	}
	if en != nil {
		if en.kind == opCloseBatch && en.fp == o.fp && en.close != nil {
			o.close.res = *en.close
			o.close.res.Replayed = true
			e.answer(o, c, en.pending)
			return
		}
		c.fail(o, ErrRequestIDReused)
		return
	}
	b := e.openBatch(ts, pol, c, now)
	if r.BatchNumber != b.number {
		c.fail(o, &BatchMismatchError{Requested: r.BatchNumber, Open: b.number})
		return
	}
	tt := r.TerminalTotals
	if tt.Currency == "" {
		tt.Currency = b.totals.Currency
	}
	inBalance := b.totals.Balances(tt) && tt.Currency == b.totals.Currency
	state := BatchStateClosed
	if !inBalance {
		state = BatchStateOutOfBalance
	}
	b.termTotals = tt
	next := rollBatch(ts, b, state, pol, c, now)
	res := &CloseBatchResult{
		BatchNumber:     b.number,
		ServerTotals:    b.totals,
		InBalance:       inBalance,
		NextBatchNumber: next.number,
		CloseTime:       time.Unix(0, now).UTC(),
	}
	e.addEntry(ts, rid, &entry{entryRec: entryRec{kind: opCloseBatch, fp: o.fp, created: now}, close: res}, c)
	c.decisions++
	o.close.res = *res
	typ, msg := audit.BatchClosed, "batch closed in balance"
	if !inBalance {
		typ, msg = audit.BatchOutOfBalance, "batch closed out of balance"
	}
	s := &b.totals
	o.audits = append(o.audits, audit.Event{
		Type:       typ,
		Time:       time.Unix(0, now),
		Actor:      "terminal:" + ts.id,
		TerminalID: ts.id,
		MerchantID: b.merchant,
		StoreID:    b.store,
		Message:    msg,
		Attributes: map[string]string{
			"batch_number":          strconv.FormatUint(b.number, 10),
			"request_id":            r.RequestID,
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
	})
	c.hold(o)
}

// housekeep drops expired state from memory and trims memory to
// MaxEntries. The disk records of idempotency entries and tombstones
// expire on their own (keyTTL), whether they expire in memory or were
// dropped from it early.
func (e *Engine) housekeep(c *commit) {
	st := e.st
	if !e.opts.noCheckpoints {
		e.checkpoint(c)
	}
	now := e.clock().UnixNano()
	if now < st.last {
		now = st.last
	}
	cutoff := now - int64(e.opts.Retention)
	durable := e.durable.Load()
	for st.entryQ.len() > 0 && !c.full(&e.opts) {
		it := st.entryQ.front()
		expired := it.at <= cutoff
		if !expired && st.entryCount <= e.opts.MaxEntries {
			break
		}
		ts, key := st.termList[it.term], it.key
		if it.tomb {
			if tb, ok := ts.tombs[key]; ok && tb.created == it.at {
				if tb.pending > durable {
					break
				}
				delete(ts.tombs, key)
				st.entryCount--
				if !expired {
					st.evictedUntil = it.at
				}
			}
		} else {
			if en, ok := ts.entries[key]; ok && en.created == it.at {
				if en.pending > durable {
					break
				}
				delete(ts.entries, key)
				delete(ts.closes, key)
				st.entryCount--
				if !expired {
					st.evictedUntil = it.at
				}
			}
		}
		st.entryQ.pop()
	}
	txCutoff := now - int64(e.opts.TxCacheTTL)
	for st.txQ.len() > 0 {
		it := st.txQ.front()
		if it.at > txCutoff && len(st.txs) <= e.opts.MaxEntries {
			break
		}
		if ct, ok := st.txs[it.seq]; ok && ct.touched == it.at {
			if ct.pending > durable {
				break
			}
			delete(st.txs, it.seq)
		}
		st.txQ.pop()
	}
	for st.velQ.len() > 0 {
		it := st.velQ.front()
		if it.at > cutoff {
			break
		}
		ts := st.termList[it.term]
		ring := ts.vel[it.hash]
		if len(ring) > 0 && ring[0] <= it.at {
			ring = ring[1:]
		}
		if len(ring) == 0 {
			delete(ts.vel, it.hash)
		} else {
			ts.vel[it.hash] = ring
		}
		st.velQ.pop()
	}
}
