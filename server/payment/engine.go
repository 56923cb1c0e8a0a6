package payment

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store"
)

// Engine authorizes, reverses and refunds payments and closes batches. It is
// safe for concurrent use. Create it with Open and stop it with Close.
type Engine struct {
	db     *store.DB
	dir    Directory
	audit  *audit.Log
	opts   Options
	logger *slog.Logger
	clock  func() time.Time

	// ops carries requests to the decision loop.
	ops chan *op
	// commits carries gathered decisions from the decision loop to the
	// writer; idle tells the decision loop that the writer is free.
	commits chan *commit
	idle    chan struct{}
	// loopDone and writerDone close when the goroutines have exited.
	loopDone, writerDone chan struct{}

	mu sync.RWMutex // guards closed, so that no request is sent on ops after Close closed it
	// closed is set by Close.
	closed bool

	// failed is set when a commit failed; failErr says why.
	failed  atomic.Bool
	failErr atomic.Pointer[error]
	// stopped closes when a commit failed (see Stopped); stopOnce guards
	// the close.
	stopped  chan struct{}
	stopOnce sync.Once
	// durable is the number of the last commit that is on disk and
	// recorded in the watermark.
	durable atomic.Uint64

	authorizations, approvals           atomic.Uint64
	commitCount, decisionCount, maxSize atomic.Uint64

	// ids makes and reads transaction IDs; set by Open, then read-only.
	ids *idCodec
	// filterBuild is the request filter being built (see reqFilter);
	// owned by the decision loop, then by Close.
	filterBuild *filterBuild
	// readBudget, when positive (tests only), replaces scanBudget.
	readBudget int
	// queryReads counts the index keys and transactions that
	// ListTransactions read, so that tests can tell a page's cost.
	queryReads atomic.Uint64
	// filterReady is set when a request filter build finished, cleared
	// when one starts.
	filterReady atomic.Bool
	// windowSeq is the first ledger sequence number of the rebuild window
	// at Open; set by Open, then read-only.
	windowSeq uint64

	// st is owned by the decision loop goroutine (and by Open before the
	// loop starts).
	st *state
}

// op is one request travelling through the engine.
type op struct {
	kind      opKind
	pol       Policy
	fp        fingerprint
	tokenHash uint64

	// The request and, written by the decision loop before done is closed,
	// the answer. Authorize, the hot path, is held inline; the others by
	// pointer, set for their kind only.
	auth    AuthorizeRequest
	authRes AuthorizeResult
	rev     *reverseCall
	ref     *refundCall
	close   *closeCall
	capt    *captureCall
	batch   *BatchSummary
	err     error
	// audits are committed with the decision (see writer).
	audits []audit.Event

	// done receives one value when the answer may be released. It is
	// buffered, so the sender never waits for a caller that gave up.
	done chan struct{}
}

// opPool recycles ops (and their done channels) of requests whose caller
// took the answer; an op whose caller gave up is left to the collector,
// since its answer may still be sent.
var opPool = sync.Pool{New: func() any { return &op{done: make(chan struct{}, 1)} }}

func getOp(kind opKind, pol Policy) *op {
	o := opPool.Get().(*op)
	o.kind, o.pol = kind, pol
	return o
}

// putOp returns an op whose answer was taken.
func putOp(o *op) {
	*o = op{done: o.done}
	opPool.Put(o)
}

type reverseCall struct {
	req ReverseRequest
	res ReverseResult
}

type refundCall struct {
	req RefundRequest
	res RefundResult
}

type closeCall struct {
	req CloseBatchRequest
	res CloseBatchResult
}

type captureCall struct {
	req CaptureRequest
	res CaptureResult
}

// Open starts an engine on db: it rebuilds the in-memory state (open batches,
// daily totals, velocity windows, idempotency entries and tombstones of the
// retention period) from the ledger, then starts the decision loop and the
// group-commit writer. dir supplies terminal policies; auditLog receives
// merchant-mismatch alerts and batch closes.
func Open(ctx context.Context, db *store.DB, auditLog *audit.Log, dir Directory, opts Options, logger *slog.Logger) (*Engine, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if db == nil || dir == nil || auditLog == nil {
		return nil, errors.New("payment: Open needs a database, a directory and an audit log")
	}
	e := &Engine{
		db:         db,
		dir:        dir,
		audit:      auditLog,
		opts:       opts,
		logger:     discardIfNil(logger),
		clock:      opts.Now,
		ops:        make(chan *op, opts.QueueLength),
		commits:    make(chan *commit, 1),
		idle:       make(chan struct{}, 1),
		loopDone:   make(chan struct{}),
		writerDone: make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	if e.clock == nil {
		e.clock = time.Now
	}
	st, err := e.rebuild(ctx)
	if err != nil {
		return nil, err
	}
	e.st = st
	if err := e.indexLedger(); err != nil {
		return nil, err
	}
	e.startFilter()
	// Logged before the loop starts: from then on the state is the loop's.
	e.logger.Info("payment engine open",
		"terminals", len(st.terms), "transactions_in_memory", len(st.txs),
		"idempotency_entries", st.entryCount, "next_seq", st.nextSeq)
	go e.loop()
	go e.writer()
	return e, nil
}

// Close stops taking requests, decides and commits those already queued,
// and stops the engine. Requests made after Close fail with ErrClosed. It
// returns the storage error that failed the engine, if one did.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return e.failure()
	}
	e.closed = true
	close(e.ops)
	e.mu.Unlock()
	<-e.loopDone
	<-e.writerDone
	e.stopFilter()
	return e.failure()
}

// failure returns the error that failed the engine, or nil.
func (e *Engine) failure() error {
	if p := e.failErr.Load(); p != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, *p)
	}
	return nil
}

// Stats returns how many authorizations were decided since Open (replays
// not counted) and how many of them were approved.
func (e *Engine) Stats() (authorizations, approvals uint64) {
	return e.authorizations.Load(), e.approvals.Load()
}

// CommitStats describes the group commit since Open.
func (e *Engine) CommitStats() CommitStats {
	return CommitStats{Commits: e.commitCount.Load(), Decisions: e.decisionCount.Load(), MaxDecisions: e.maxSize.Load()}
}

// Healthy reports whether the engine can decide requests: it is open and no
// commit has failed.
func (e *Engine) Healthy() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return !e.closed && !e.failed.Load()
}

// submit hands o to the decision loop and waits until its answer may be
// released: after the commit holding its decision returned. If ctx ends
// first, submit returns ctx's error; the request may still be decided, and a
// retry with the same request ID gets its answer.
func (e *Engine) submit(ctx context.Context, o *op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.mu.RLock()
	if e.closed {
		e.mu.RUnlock()
		return ErrClosed
	}
	if e.failed.Load() {
		e.mu.RUnlock()
		return ErrUnavailable
	}
	// Refused before it is decided: a decision that reached the loop is
	// committed whatever the disk, and the reserve is sized to hold it.
	if err := e.db.CheckSpace(); err != nil {
		e.mu.RUnlock()
		return err
	}
	select {
	case e.ops <- o:
	default:
		select {
		case e.ops <- o:
		case <-ctx.Done():
			e.mu.RUnlock()
			return ctx.Err()
		}
	}
	e.mu.RUnlock()
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Authorize decides a card payment. Declines are results; errors mean the
// request was malformed (*ValidationError), the terminal is unknown to the
// Directory, or the engine cannot decide (ErrClosed, ErrUnavailable,
// context errors).
func (e *Engine) Authorize(ctx context.Context, req AuthorizeRequest) (AuthorizeResult, error) {
	if err := req.validate(); err != nil {
		return AuthorizeResult{}, err
	}
	pol, err := e.dir.Policy(req.TerminalID)
	if err != nil {
		return AuthorizeResult{}, err
	}
	o := getOp(opAuthorize, pol)
	o.auth = req
	o.fp = fingerprintAuthorize(&req)
	o.tokenHash = hashToken(req.Card.Token)
	if err := e.submit(ctx, o); err != nil {
		return AuthorizeResult{}, err
	}
	res := o.authRes
	putOp(o)
	return res, nil
}

// Reverse cancels an authorization of the same terminal by its request ID.
// A reversal of an unknown original leaves a tombstone that declines the
// original (code 12) if it arrives later.
func (e *Engine) Reverse(ctx context.Context, req ReverseRequest) (ReverseResult, error) {
	if err := req.validate(); err != nil {
		return ReverseResult{}, err
	}
	pol, err := e.dir.Policy(req.TerminalID)
	if err != nil {
		return ReverseResult{}, err
	}
	o := getOp(opReverse, pol)
	o.rev = &reverseCall{req: req}
	o.fp = fingerprintReverse(&req)
	if err := e.submit(ctx, o); err != nil {
		return ReverseResult{}, err
	}
	res := o.rev.res
	putOp(o)
	return res, nil
}

// Refund refunds part or all of an approved sale of the terminal's merchant,
// never more than was captured less earlier refunds.
func (e *Engine) Refund(ctx context.Context, req RefundRequest) (RefundResult, error) {
	if err := req.validate(); err != nil {
		return RefundResult{}, err
	}
	pol, err := e.dir.Policy(req.TerminalID)
	if err != nil {
		return RefundResult{}, err
	}
	o := getOp(opRefund, pol)
	o.ref = &refundCall{req: req}
	o.fp = fingerprintFollowUp(opRefund, req.AuthorizationID, req.Amount)
	if err := e.submit(ctx, o); err != nil {
		return RefundResult{}, err
	}
	res := o.ref.res
	putOp(o)
	return res, nil
}

// CloseBatch closes the terminal's open batch, compares the terminal's totals
// with the server's and opens the next batch. A batch number other than the
// open batch's fails with a *BatchMismatchError, unless the request is a
// replay of an earlier close. A batch that the terminal's rebinding closes
// (see OpenBatch) is closed before the request is decided, so a close
// naming it fails that way.
func (e *Engine) CloseBatch(ctx context.Context, req CloseBatchRequest) (CloseBatchResult, error) {
	if err := req.validate(); err != nil {
		return CloseBatchResult{}, err
	}
	pol, err := e.dir.Policy(req.TerminalID)
	if err != nil {
		return CloseBatchResult{}, err
	}
	o := getOp(opCloseBatch, pol)
	o.close = &closeCall{req: req}
	o.fp = fingerprintClose(&req)
	if err := e.submit(ctx, o); err != nil {
		return CloseBatchResult{}, err
	}
	res := o.close.res
	putOp(o)
	return res, nil
}

// fingerprint identifies a request's content, so that a reused request ID
// with different content is told apart from a retry.
type fingerprint [16]byte

// Fingerprints hash length-prefixed fields into a stack buffer.
func fpStr(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func fpInt(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

func fpSum(b []byte) fingerprint {
	h := sha256.Sum256(b)
	return fingerprint(h[:len(fingerprint{})])
}

// fingerprintAuthorize covers everything but the terminal's local time,
// which a retrying terminal may stamp anew.
func fingerprintAuthorize(r *AuthorizeRequest) fingerprint {
	var buf [320]byte
	b := fpInt(buf[:0], int64(opAuthorize))
	b = fpStr(b, r.MerchantID)
	b = fpInt(b, r.Amount.MinorUnits)
	b = fpStr(b, r.Amount.Currency)
	b = fpStr(b, r.Card.Token)
	b = fpStr(b, r.Card.MaskedPAN)
	b = fpInt(b, int64(r.Card.EntryMode))
	capture := int64(0)
	if r.Capture {
		capture = 1
	}
	return fpSum(fpInt(b, capture))
}

func fingerprintReverse(r *ReverseRequest) fingerprint {
	var buf [96]byte
	b := fpInt(buf[:0], int64(opReverse))
	b = fpStr(b, r.OriginalRequestID)
	return fpSum(fpInt(b, int64(r.Reason)))
}

// fingerprintFollowUp is the fingerprint of a Refund or Capture (kind) of
// the authorization authID for amount.
func fingerprintFollowUp(kind opKind, authID string, amount Money) fingerprint {
	var buf [128]byte
	b := fpInt(buf[:0], int64(kind))
	b = fpStr(b, authID)
	b = fpInt(b, amount.MinorUnits)
	return fpSum(fpStr(b, amount.Currency))
}

func fingerprintClose(r *CloseBatchRequest) fingerprint {
	var buf [128]byte
	b := fpInt(buf[:0], int64(opCloseBatch))
	b = fpInt(b, int64(r.BatchNumber))
	t := &r.TerminalTotals
	b = fpStr(b, t.Currency)
	for _, v := range [...]int64{int64(t.SaleCount), t.SaleAmount, int64(t.RefundCount), t.RefundAmount,
		int64(t.ReversalCount), t.ReversalAmount, int64(t.PreauthCount), t.PreauthAmount} {
		b = fpInt(b, v)
	}
	return fpSum(b)
}

// hashToken returns a 64-bit digest of a card token, used to count approvals
// per card for velocity limits without keeping the token.
func hashToken(token string) uint64 {
	var buf [160]byte
	b := append(append(buf[:0], "posfleet-card-token\x00"...), token...)
	h := sha256.Sum256(b)
	return binary.BigEndian.Uint64(h[:8])
}
