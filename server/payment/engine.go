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
	// durable is the number of the last commit that is on disk.
	durable atomic.Uint64

	authorizations, approvals           atomic.Uint64
	commitCount, decisionCount, maxSize atomic.Uint64

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

	auth  AuthorizeRequest
	rev   ReverseRequest
	ref   RefundRequest
	close CloseBatchRequest

	// Results, written by the decision loop before done is closed.
	authRes  AuthorizeResult
	revRes   ReverseResult
	refRes   RefundResult
	closeRes CloseBatchResult
	err      error
	// audits are recorded once the decision is durable.
	audits []audit.Event

	done chan struct{}
}

// Open starts an engine on db: it rebuilds the in-memory state (open batches,
// daily totals, velocity windows, idempotency entries and tombstones of the
// retention period) from the ledger, then starts the decision loop and the
// group-commit writer. dir supplies terminal policies; auditLog receives
// merchant-mismatch alerts and batch closes.
func Open(ctx context.Context, db *store.DB, dir Directory, auditLog *audit.Log, opts Options, logger *slog.Logger) (*Engine, error) {
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
	}
	if e.clock == nil {
		e.clock = time.Now
	}
	st, err := e.rebuild(ctx)
	if err != nil {
		return nil, err
	}
	e.st = st
	go e.loop()
	go e.writer()
	e.logger.Info("payment engine open",
		"terminals", len(st.terms), "transactions_in_memory", len(st.txs),
		"idempotency_entries", st.entryCount, "next_seq", st.nextSeq)
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
	o.done = make(chan struct{})
	e.mu.RLock()
	if e.closed {
		e.mu.RUnlock()
		return ErrClosed
	}
	if e.failed.Load() {
		e.mu.RUnlock()
		return ErrUnavailable
	}
	select {
	case e.ops <- o:
	case <-ctx.Done():
		e.mu.RUnlock()
		return ctx.Err()
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
	o := &op{kind: opAuthorize, pol: pol, auth: req}
	o.fp = fingerprintAuthorize(&req)
	o.tokenHash = hashToken(req.Card.Token)
	if err := e.submit(ctx, o); err != nil {
		return AuthorizeResult{}, err
	}
	return o.authRes, nil
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
	o := &op{kind: opReverse, pol: pol, rev: req}
	o.fp = fingerprintReverse(&req)
	if err := e.submit(ctx, o); err != nil {
		return ReverseResult{}, err
	}
	return o.revRes, nil
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
	o := &op{kind: opRefund, pol: pol, ref: req}
	o.fp = fingerprintRefund(&req)
	if err := e.submit(ctx, o); err != nil {
		return RefundResult{}, err
	}
	return o.refRes, nil
}

// CloseBatch closes the terminal's open batch, compares the terminal's totals
// with the server's and opens the next batch. A batch number other than the
// open batch's fails with a *BatchMismatchError, unless the request is a
// replay of an earlier close.
func (e *Engine) CloseBatch(ctx context.Context, req CloseBatchRequest) (CloseBatchResult, error) {
	if err := req.validate(); err != nil {
		return CloseBatchResult{}, err
	}
	pol, err := e.dir.Policy(req.TerminalID)
	if err != nil {
		return CloseBatchResult{}, err
	}
	o := &op{kind: opCloseBatch, pol: pol, close: req}
	o.fp = fingerprintClose(&req)
	if err := e.submit(ctx, o); err != nil {
		return CloseBatchResult{}, err
	}
	return o.closeRes, nil
}

// fingerprint identifies a request's content, so that a reused request ID
// with different content is told apart from a retry.
type fingerprint [16]byte

// fpWriter builds a fingerprint from length-prefixed fields.
type fpWriter struct{ b []byte }

func (w *fpWriter) str(s string) {
	w.b = binary.AppendUvarint(w.b, uint64(len(s)))
	w.b = append(w.b, s...)
}
func (w *fpWriter) int(v int64) { w.b = binary.AppendVarint(w.b, v) }

func (w *fpWriter) sum() fingerprint {
	h := sha256.Sum256(w.b)
	var f fingerprint
	copy(f[:], h[:])
	return f
}

// fingerprintAuthorize covers everything but the terminal's local time,
// which a retrying terminal may stamp anew.
func fingerprintAuthorize(r *AuthorizeRequest) fingerprint {
	w := fpWriter{b: make([]byte, 0, 64+len(r.Card.Token)+len(r.MerchantID))}
	w.int(int64(opAuthorize))
	w.str(r.MerchantID)
	w.int(r.Amount.MinorUnits)
	w.str(r.Amount.Currency)
	w.str(r.Card.Token)
	w.str(r.Card.MaskedPAN)
	w.int(int64(r.Card.EntryMode))
	if r.Capture {
		w.int(1)
	} else {
		w.int(0)
	}
	return w.sum()
}

func fingerprintReverse(r *ReverseRequest) fingerprint {
	w := fpWriter{b: make([]byte, 0, 80)}
	w.int(int64(opReverse))
	w.str(r.OriginalRequestID)
	w.int(int64(r.Reason))
	return w.sum()
}

func fingerprintRefund(r *RefundRequest) fingerprint {
	w := fpWriter{b: make([]byte, 0, 48)}
	w.int(int64(opRefund))
	w.str(r.AuthorizationID)
	w.int(r.Amount.MinorUnits)
	w.str(r.Amount.Currency)
	return w.sum()
}

func fingerprintClose(r *CloseBatchRequest) fingerprint {
	w := fpWriter{b: make([]byte, 0, 80)}
	w.int(int64(opCloseBatch))
	w.int(int64(r.BatchNumber))
	t := &r.TerminalTotals
	w.str(t.Currency)
	for _, v := range []int64{int64(t.SaleCount), t.SaleAmount, int64(t.RefundCount), t.RefundAmount,
		int64(t.ReversalCount), t.ReversalAmount, int64(t.PreauthCount), t.PreauthAmount} {
		w.int(v)
	}
	return w.sum()
}

// hashToken returns a 64-bit digest of a card token, used to count approvals
// per card for velocity limits without keeping the token.
func hashToken(token string) uint64 {
	h := sha256.Sum256([]byte("posfleet-card-token\x00" + token))
	return binary.BigEndian.Uint64(h[:8])
}
