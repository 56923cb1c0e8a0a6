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
		e.authorize(o, c, now)
	case opReverse:
		e.reverse(o, c, now)
	case opRefund:
		e.refund(o, c, now)
	case opCloseBatch:
		e.closeBatch(o, c, now)
	case opCapture:
		e.capture(o, c, now)
	case opOpenBatch:
		e.readOpenBatch(o, c, now)
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
	term, err := e.terminal(terminal, &o.pol, now)
	rid := e.st.req(requestID)
	var en *entry
	if err == nil {
		en, err = e.lookupEntry(term, rid, now)
	}
	if err != nil {
		c.fail(o, err)
		return nil, rid, nil, false
	}
	return term, rid, en, true
}

// lookupEntry finds the idempotency entry of the request ID, in memory or, when
// entries of the retention period were dropped early, on disk.
func (e *Engine) lookupEntry(term *termState, rid reqID, now int64) (*entry, error) {
	if en := term.entry(rid.key); en != nil {
		return en, nil
	}
	cutoff := now - int64(e.opts.Retention)
	if e.st.evictedUntil < cutoff || e.filterAbsent(term.id, rid.id, false, cutoff) {
		return nil, nil
	}
	e.st.diskLookups++
	var en *entry
	err := e.db.View(func(txn *store.Txn) error {
		var err error
		var scanned bool
		en, scanned, err = findEntry(txn, term.id, rid.id, cutoff, e.st.indexedSince)
		if scanned {
			e.st.entryScans++
		}
		return err
	})
	return en, err
}

// lookupTomb reports whether a tombstone for the request ID exists.
func (e *Engine) lookupTomb(term *termState, rid reqID, now int64) (bool, error) {
	if _, ok := term.tombs[rid.key]; ok {
		return true, nil
	}
	cutoff := now - int64(e.opts.Retention)
	if e.st.evictedUntil < cutoff || e.filterAbsent(term.id, rid.id, true, cutoff) {
		return false, nil
	}
	e.st.diskLookups++
	v, err := e.db.Get(keyTombstone(term.id, rid.id))
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
func (e *Engine) addEntry(term *termState, rid reqID, en *entry, c *commit) {
	en.pending = c.seq
	term.entries[rid.key] = en.entryRec
	if en.close != nil {
		term.closes[rid.key] = en.close
	}
	e.st.entryCount++
	e.st.entryQ.push(expiring{at: en.created, term: term.idx, key: rid.key})
	e.filterAdd(term.id, rid.id, false)
	ttl := e.keyTTL(en.created, e.clock().UnixNano())
	if en.kind == opReverse || en.kind == opCloseBatch {
		c.putTTL(keyRequest(term.id, rid.id), en.encode(), ttl)
	} else {
		c.putTTL(keyReqIndex(term.id, rid.id), encodeReqIndex(en.created, en.txSeq), ttl)
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
func (e *Engine) openBatch(term *termState, pol *Policy, c *commit, now int64) *batchState {
	if term.batch == nil {
		term.batch = newBatch(term, pol, 1, now)
		c.markDirty(term.batch)
	}
	return term.batch
}

// newBatch returns batch number of terminal term, open under pol.
func newBatch(term *termState, pol *Policy, number uint64, now int64) *batchState {
	return &batchState{
		terminal: term.id,
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
func rollBatch(term *termState, b *batchState, state BatchState, pol *Policy, c *commit, now int64) *batchState {
	b.state, b.closeTime = state, now
	c.markDirty(b)
	term.batch = newBatch(term, pol, b.number+1, now)
	c.markDirty(term.batch)
	return term.batch
}

// currentBatch returns the open batch that a new transaction of the
// terminal under pol goes into. A batch belongs to one merchant, store and
// currency: when the terminal was rebound, or its merchant's currency
// changed, since its batch opened, an empty batch takes the new binding,
// and one holding transactions is closed as the server counted it (not
// reconciled with the terminal's totals; audited) and the next one opens.
// Otherwise the old batch would mix two merchants' or two currencies'
// sales, in its totals and in both merchants' settlement reports.
func (e *Engine) currentBatch(o *op, term *termState, pol *Policy, c *commit, now int64) *batchState {
	b := e.openBatch(term, pol, c, now)
	if b.merchant == pol.MerchantID && b.store == pol.StoreID && b.totals.Currency == pol.MerchantCurrency {
		return b
	}
	if b.totals == (BatchTotals{Currency: b.totals.Currency}) {
		b.merchant, b.store, b.totals.Currency = pol.MerchantID, pol.StoreID, pol.MerchantCurrency
		c.markDirty(b)
		return b
	}
	next := rollBatch(term, b, BatchStateClosed, pol, c, now)
	o.audits = append(o.audits, audit.Event{
		Type:       audit.BatchClosed,
		Time:       time.Unix(0, now),
		Actor:      "system",
		TerminalID: term.id,
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
	e.expireEntries(c, cutoff, durable)
	e.expireTxs(now-int64(e.opts.TxCacheTTL), durable)
	st.expireVelocity(cutoff)
}

// expireEntries drops from memory the idempotency entries and tombstones
// created at or before cutoff, and the oldest beyond MaxEntries, as long
// as c has room; none whose write is not yet durable (commits up to
// durable are) leaves, nor any after it.
func (e *Engine) expireEntries(c *commit, cutoff int64, durable uint64) {
	st := e.st
	for st.entryQ.len() > 0 && !c.full(&e.opts) {
		it := st.entryQ.front()
		expired := it.at <= cutoff
		if !expired && st.entryCount <= e.opts.MaxEntries {
			break
		}
		term, key := st.termList[it.term], it.key
		if it.tomb {
			if tb, ok := term.tombs[key]; ok && tb.created == it.at {
				if tb.pending > durable {
					break
				}
				delete(term.tombs, key)
				st.entryCount--
				if !expired {
					st.evictedUntil = it.at
				}
			}
		} else {
			if en, ok := term.entries[key]; ok && en.created == it.at {
				if en.pending > durable {
					break
				}
				delete(term.entries, key)
				delete(term.closes, key)
				st.entryCount--
				if !expired {
					st.evictedUntil = it.at
				}
			}
		}
		st.entryQ.pop()
	}
}

// expireTxs drops from memory the transactions last touched at or before
// cutoff, and the oldest beyond MaxEntries; none whose write is not yet
// durable leaves, nor any after it.
func (e *Engine) expireTxs(cutoff int64, durable uint64) {
	st := e.st
	for st.txQ.len() > 0 {
		it := st.txQ.front()
		if it.at > cutoff && len(st.txs) <= e.opts.MaxEntries {
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
}

// expireVelocity forgets the card approvals made at or before cutoff.
func (st *state) expireVelocity(cutoff int64) {
	for st.velQ.len() > 0 {
		it := st.velQ.front()
		if it.at > cutoff {
			break
		}
		term := st.termList[it.term]
		ring := term.vel[it.hash]
		if len(ring) > 0 && ring[0] <= it.at {
			ring = ring[1:]
		}
		if len(ring) == 0 {
			delete(term.vel, it.hash)
		} else {
			term.vel[it.hash] = ring
		}
		st.velQ.pop()
	}
}
