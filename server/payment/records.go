package payment

import (
	"encoding/binary"
	"fmt"
	"time"
)

const dateLayout = "2006-01-02"

// tx is a transaction: an authorization (sale or pre-auth) or a refund. The
// decision loop owns the in-memory copies; records on disk are the durable
// state.
type tx struct {
	seq       uint64
	kind      TxKind
	terminal  string
	merchant  string
	store     string
	requestID string
	amount    int64
	currency  string
	decision  Decision
	code      string
	authCode  string
	maskedPAN string
	entryMode EntryMode
	tokenHash uint64
	batch     uint64
	date      string
	decided   int64 // unix nanoseconds
	localTime int64 // unix nanoseconds, 0 when not given

	reversed        bool
	reversalReason  ReversalReason
	reversalTime    int64
	reversalRequest string
	refunded        int64
	original        uint64 // refunds: the sale's seq; captures: the pre-auth's
	// captured is, for a pre-auth, the amount its capture settled (0 while
	// it is not captured); a pre-auth is captured at most once.
	captured        int64
	claimedMerchant string
	// fp is the request's fingerprint; remaining is, for refunds, what was
	// left to refund on the sale after this one (part of its answer).
	fp           fingerprint
	remaining    int64
	remainingCur string
}

// cachedTx is a transaction held in memory: its record as last written, so
// that the collector has a single pointer-free object to mark per cached
// transaction instead of a struct and its strings. Decisions that need the
// transaction decode it; changes are written back with writeTx.
type cachedTx struct {
	rec []byte
	// pending is the commit that holds the latest write of the record; it
	// may leave memory only once that commit is durable.
	pending uint64
	// touched is when it was cached (unix nanoseconds), for expiry from
	// memory.
	touched int64
}

func (t *tx) approved() bool { return t.decision == DecisionApproved }

func (t *tx) encode() []byte {
	// The numbers of a typical record take about 70 bytes; the record is
	// kept in memory while cached, so it is sized to fit.
	e := newEncoder(recTx, 80+len(t.fp)+len(t.terminal)+len(t.merchant)+len(t.store)+len(t.requestID)+len(t.currency)+
		len(t.code)+len(t.authCode)+len(t.maskedPAN)+len(t.date)+len(t.reversalRequest)+len(t.claimedMerchant)+len(t.remainingCur))
	e.uint(t.seq)
	e.uint(uint64(t.kind))
	e.str(t.terminal)
	e.str(t.merchant)
	e.str(t.store)
	e.str(t.requestID)
	e.int(t.amount)
	e.str(t.currency)
	e.uint(uint64(t.decision))
	e.str(t.code)
	e.str(t.authCode)
	e.str(t.maskedPAN)
	e.uint(uint64(t.entryMode))
	e.uint(t.tokenHash)
	e.uint(t.batch)
	e.str(t.date)
	e.int(t.decided)
	e.int(t.localTime)
	e.bool(t.reversed)
	e.uint(uint64(t.reversalReason))
	e.int(t.reversalTime)
	e.str(t.reversalRequest)
	e.int(t.refunded)
	e.uint(t.original)
	e.str(t.claimedMerchant)
	e.bytes(t.fp[:])
	e.int(t.remaining)
	e.str(t.remainingCur)
	e.int(t.captured)
	return e.b
}

func decodeTx(v []byte) (*tx, error) {
	d := newDecoder(v, recTx)
	t := &tx{
		seq:       d.uint(),
		kind:      TxKind(d.uint()),
		terminal:  d.str(),
		merchant:  d.str(),
		store:     d.str(),
		requestID: d.str(),
		amount:    d.int(),
		currency:  d.str(),
		decision:  Decision(d.uint()),
		code:      d.str(),
		authCode:  d.str(),
		maskedPAN: d.str(),
		entryMode: EntryMode(d.uint()),
		tokenHash: d.uint(),
		batch:     d.uint(),
		date:      d.str(),
		decided:   d.int(),
		localTime: d.int(),
	}
	t.reversed = d.bool()
	t.reversalReason = ReversalReason(d.uint())
	t.reversalTime = d.int()
	t.reversalRequest = d.str()
	t.refunded = d.int()
	t.original = d.uint()
	t.claimedMerchant = d.str()
	if fp := d.raw(); d.err == nil && len(fp) != len(t.fp) {
		d.err = errCorrupt
	} else {
		copy(t.fp[:], fp)
	}
	t.remaining = d.int()
	t.remainingCur = d.str()
	if d.err == nil && len(d.b) > 0 {
		// Records written before captures existed end here.
		t.captured = d.int()
	}
	if d.err != nil {
		return nil, fmt.Errorf("payment: decode transaction: %w", d.err)
	}
	return t, nil
}

// public converts the record to the exported Transaction.
func (t *tx) public(ids *idCodec) Transaction {
	out := Transaction{
		ID:                ids.id(t.kind, t.seq),
		Sequence:          t.seq,
		RequestID:         t.requestID,
		Kind:              t.kind,
		TerminalID:        t.terminal,
		MerchantID:        t.merchant,
		StoreID:           t.store,
		Amount:            Money{MinorUnits: t.amount, Currency: t.currency},
		Decision:          t.decision,
		Code:              t.code,
		AuthCode:          t.authCode,
		MaskedPAN:         t.maskedPAN,
		EntryMode:         t.entryMode,
		Batch:             t.batch,
		BusinessDate:      t.date,
		DecisionTime:      time.Unix(0, t.decided).UTC(),
		Reversed:          t.reversed,
		ReversalReason:    t.reversalReason,
		RefundedAmount:    t.refunded,
		CapturedAmount:    t.captured,
		ClaimedMerchantID: t.claimedMerchant,
	}
	if t.localTime != 0 {
		out.LocalTime = time.Unix(0, t.localTime).UTC()
	}
	if t.reversalTime != 0 {
		out.ReversalTime = time.Unix(0, t.reversalTime).UTC()
	}
	if (t.kind == TxKindRefund || t.kind == TxKindCapture) && t.original != 0 {
		out.OriginalID = ids.id(TxKindSale, t.original)
	}
	return out
}

// opKind is the kind of request, also the kind of an idempotency entry.
// Request IDs share one namespace per terminal across all kinds.
type opKind uint8

const (
	opAuthorize opKind = iota + 1
	opReverse
	opRefund
	opCloseBatch
	// opHousekeep runs housekeeping at once (tests).
	opHousekeep
	// opCapture completes a pre-auth. Kinds are stored in entries, so
	// their numbers stay.
	opCapture
	// opOpenBatch reads the terminal's open batch; it records nothing.
	opOpenBatch
)

// entry is an idempotency entry: a request ID's fingerprint and the answer
// that replays of it get.
type entry struct {
	entryRec
	// CloseBatch: the answer. In memory it is kept beside the entry (see
	// termState.closes).
	close *CloseBatchResult
}

// entryRec is an entry without its CloseBatch answer: it holds no pointers,
// so the collector does not scan the maps of them the decision loop keeps.
type entryRec struct {
	kind    opKind
	fp      fingerprint
	created int64 // unix nanoseconds
	// pending is the commit that writes the entry; replays are answered at
	// once only when it is durable.
	pending uint64

	// Authorize, Refund and Capture: the transaction and its answer.
	txSeq    uint64
	decision Decision
	code     respCode
	authCode approvalCode
	batch    uint64
	decided  int64
	// Refund: remaining refundable after it. Reverse: amount released.
	// Capture: the pre-auth's amount left uncaptured, released.
	amount   int64
	currency currencyCode
	// Reverse: the outcome and the authorization it reversed (its sequence
	// number; 0 when none).
	status  ReverseStatus
	authSeq uint64
}

// authID returns the ID of the authorization a Reverse entry reversed, or
// "".
func (en *entryRec) authID(ids *idCodec) string {
	if en.authSeq == 0 {
		return ""
	}
	return ids.id(TxKindSale, en.authSeq)
}

// respCode holds a two-character response code inline.
type respCode [2]byte

func newRespCode(s string) respCode {
	var c respCode
	copy(c[:], s)
	return c
}

// respCodes are the response codes as strings, so that answering a replay
// needs no allocation for them.
var respCodes = func() map[respCode]string {
	m := map[respCode]string{}
	for _, c := range []string{CodeApproved, CodeInvalidMerchant, CodeDoNotHonour, CodeInvalidTransaction,
		CodeInvalidAmount, CodeInvalidCard, CodeInsufficientFunds, CodeExpiredCard, CodeNotPermitted,
		CodeExceedsAmountLimit, CodeExceedsFrequency, CodeDuplicateTransmission, CodeSystemError} {
		m[newRespCode(c)] = c
	}
	return m
}()

// String returns the code.
func (c respCode) String() string {
	if s, ok := respCodes[c]; ok {
		return s
	}
	return trimZeros(c[:])
}

// currencyCode holds a three-letter currency code (or none) inline.
type currencyCode [3]byte

func newCurrencyCode(s string) currencyCode {
	var c currencyCode
	copy(c[:], s)
	return c
}

// String returns the code, "" for none.
func (c currencyCode) String() string { return trimZeros(c[:]) }

// trimZeros returns b without trailing zero bytes, as a string.
func trimZeros(b []byte) string {
	n := len(b)
	for n > 0 && b[n-1] == 0 {
		n--
	}
	return string(b[:n])
}

// approvalCode holds a six-character approval code (or none) inline, so
// that the idempotency entries kept in memory need no string of their own
// for it.
type approvalCode [6]byte

func newApprovalCode(s string) approvalCode {
	var c approvalCode
	copy(c[:], s)
	return c
}

// String returns the code, "" for none.
func (c approvalCode) String() string { return trimZeros(c[:]) }

func (en *entry) encode() []byte {
	e := newEncoder(recRequest, 96)
	e.uint(uint64(en.kind))
	e.bytes(en.fp[:])
	e.int(en.created)
	e.uint(en.txSeq)
	e.uint(uint64(en.decision))
	e.str(en.code.String())
	e.str(en.authCode.String())
	e.uint(en.batch)
	e.int(en.decided)
	e.int(en.amount)
	e.str(en.currency.String())
	e.uint(uint64(en.status))
	e.uint(en.authSeq)
	e.bool(en.close != nil)
	if c := en.close; c != nil {
		e.uint(c.BatchNumber)
		e.totals(&c.ServerTotals)
		e.bool(c.InBalance)
		e.uint(c.NextBatchNumber)
		e.int(c.CloseTime.UnixNano())
	}
	return e.b
}

func decodeEntry(v []byte) (*entry, error) {
	d := newDecoder(v, recRequest)
	en := &entry{entryRec: entryRec{kind: opKind(d.uint())}}
	fp := d.raw()
	if d.err == nil && len(fp) != len(en.fp) {
		d.err = errCorrupt
	}
	copy(en.fp[:], fp)
	en.created = d.int()
	en.txSeq = d.uint()
	en.decision = Decision(d.uint())
	en.code = newRespCode(d.str())
	en.authCode = newApprovalCode(d.str())
	en.batch = d.uint()
	en.decided = d.int()
	en.amount = d.int()
	en.currency = newCurrencyCode(d.str())
	en.status = ReverseStatus(d.uint())
	en.authSeq = d.uint()
	if d.bool() {
		c := &CloseBatchResult{BatchNumber: d.uint(), ServerTotals: d.totals(), InBalance: d.bool(), NextBatchNumber: d.uint()}
		c.CloseTime = time.Unix(0, d.int()).UTC()
		en.close = c
	}
	if d.err != nil {
		return nil, fmt.Errorf("payment: decode request record: %w", d.err)
	}
	return en, nil
}

// encodeReqIndex encodes the request index record of an Authorize or
// Refund entry: its creation time and its transaction's sequence number.
func encodeReqIndex(created int64, seq uint64) []byte {
	e := newEncoder(recReqIndex, 16)
	e.int(created)
	e.uint(seq)
	return e.b
}

func decodeReqIndex(v []byte) (created int64, seq uint64, err error) {
	d := newDecoder(v, recReqIndex)
	created = d.int()
	seq = d.uint()
	if d.err != nil {
		return 0, 0, fmt.Errorf("payment: decode request index: %w", d.err)
	}
	return created, seq, nil
}

func encodeIndexedSince(t int64) []byte {
	e := newEncoder(recMeta, 12)
	e.int(t)
	return e.b
}

func decodeIndexedSince(v []byte) (int64, error) {
	d := newDecoder(v, recMeta)
	t := d.int()
	return t, d.err
}

func encodeTombstone(created int64, reversal string) []byte {
	e := newEncoder(recTombstone, 16+len(reversal))
	e.int(created)
	e.str(reversal)
	return e.b
}

func decodeTombstone(v []byte) (created int64, err error) {
	d := newDecoder(v, recTombstone)
	created = d.int()
	_ = d.str()
	return created, d.err
}

// batchState is a terminal batch.
//
// The open batch's running totals are not rewritten with every decision:
// its record is written when the batch opens or closes, when a reversal
// changes it, and as a checkpoint by housekeeping, each time with asOf, the
// highest ledger sequence number whose effects the totals include. Every
// other change is a new transaction of the terminal with a higher sequence
// number, so the totals are the checkpoint plus the terminal's approved
// transactions in the batch after asOf (see replayBatch).
type batchState struct {
	terminal   string
	merchant   string
	store      string
	number     uint64
	state      BatchState
	totals     BatchTotals
	termTotals BatchTotals
	openTime   int64
	closeTime  int64
	asOf       uint64

	// dirty is set while the batch waits to be written with the commit
	// being gathered; unsaved while its totals changed since the record
	// was last written.
	dirty, unsaved bool
}

func (b *batchState) encode() []byte {
	e := newEncoder(recBatch, 96+len(b.terminal)+len(b.merchant)+len(b.store))
	e.str(b.terminal)
	e.str(b.merchant)
	e.str(b.store)
	e.uint(b.number)
	e.uint(uint64(b.state))
	e.totals(&b.totals)
	e.totals(&b.termTotals)
	e.int(b.openTime)
	e.int(b.closeTime)
	e.uint(b.asOf)
	return e.b
}

func decodeBatch(v []byte) (*batchState, error) {
	d := newDecoder(v, recBatch)
	b := &batchState{
		terminal:   d.str(),
		merchant:   d.str(),
		store:      d.str(),
		number:     d.uint(),
		state:      BatchState(d.uint()),
		totals:     d.totals(),
		termTotals: d.totals(),
		openTime:   d.int(),
		closeTime:  d.int(),
		asOf:       d.uint(),
	}
	if d.err != nil {
		return nil, fmt.Errorf("payment: decode batch: %w", d.err)
	}
	return b, nil
}

func (b *batchState) summary() BatchSummary {
	s := BatchSummary{
		TerminalID:     b.terminal,
		StoreID:        b.store,
		MerchantID:     b.merchant,
		Number:         b.number,
		State:          b.state,
		ServerTotals:   b.totals,
		TerminalTotals: b.termTotals,
		OpenTime:       time.Unix(0, b.openTime).UTC(),
	}
	if b.closeTime != 0 {
		s.CloseTime = time.Unix(0, b.closeTime).UTC()
	}
	return s
}

// add counts an approved transaction of the batch into its totals: a sale
// or pre-auth (a reversal when reversed) or a refund.
func (b *batchState) add(t *tx) {
	if t.batch != b.number {
		return
	}
	t.addTo(&b.totals)
}

// chunk lists the transactions one commit created: sequence numbers first
// to first+len(terminals)-1, decided between from and to. prev is the
// SHA-256 of the chunk before it (see checkChain); sum, set by decodeChunk,
// is this chunk's.
type chunk struct {
	first     uint64
	from, to  int64
	terminals []string
	prev, sum [32]byte
}

func (c *chunk) encode() []byte {
	e := newEncoder(recChunk, 58+len(c.terminals)*10)
	e.bytes(c.prev[:])
	e.int(c.from)
	e.int(c.to)
	e.uint(uint64(len(c.terminals)))
	for _, t := range c.terminals {
		e.str(t)
	}
	return e.b
}

func decodeChunk(k, v []byte) (*chunk, error) {
	if len(k) != len(prefixChunk)+8 {
		return nil, fmt.Errorf("%w: malformed chunk key %q", errCorrupt, k)
	}
	d := newDecoder(v, recChunk)
	c := &chunk{first: binary.BigEndian.Uint64(k[len(prefixChunk):]), sum: chainSum(v)}
	if prev := d.raw(); d.err == nil && len(prev) != len(c.prev) {
		d.err = errCorrupt
	} else {
		copy(c.prev[:], prev)
	}
	c.from, c.to = d.int(), d.int()
	n := d.uint()
	if d.err == nil && n > uint64(len(d.b)) {
		d.err = errCorrupt
	}
	if d.err == nil {
		c.terminals = make([]string, n)
		for i := range c.terminals {
			c.terminals[i] = d.str()
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("payment: decode chunk: %w", d.err)
	}
	return c, nil
}

// terminal returns the terminal of transaction seq if the chunk holds it.
func (c *chunk) terminal(seq uint64) (string, bool) {
	if seq < c.first || seq-c.first >= uint64(len(c.terminals)) {
		return "", false
	}
	return c.terminals[seq-c.first], true
}

// entry returns the idempotency entry that a transaction record stands for.
// Declines for a reused request ID (94) stand for none: the request ID
// belongs to the earlier request.
func (t *tx) entry() *entry {
	if t.code == CodeDuplicateTransmission {
		return nil
	}
	return t.answer()
}

// answer returns the answer to the request that created t, as an entry:
// Authorize answers for sales and pre-auths, Refund answers for refunds,
// Capture answers for captures.
func (t *tx) answer() *entry {
	en := &entry{entryRec: entryRec{
		kind:     opAuthorize,
		fp:       t.fp,
		created:  t.decided,
		txSeq:    t.seq,
		decision: t.decision,
		code:     newRespCode(t.code),
		authCode: newApprovalCode(t.authCode),
		batch:    t.batch,
		decided:  t.decided,
	}}
	switch t.kind {
	case TxKindRefund:
		en.kind = opRefund
		en.amount, en.currency = t.remaining, newCurrencyCode(t.remainingCur)
	case TxKindCapture:
		en.kind = opCapture
		en.amount, en.currency = t.remaining, newCurrencyCode(t.remainingCur)
	}
	return en
}
