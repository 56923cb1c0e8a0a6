package payment_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/payment"
)

// hookControl holds commits at will and makes them fail at will.
type hookControl struct {
	mu      sync.Mutex // guards block, fail, entered
	block   chan struct{}
	fail    error
	entered chan struct{}
	commits atomic.Int64
}

func (h *hookControl) hook() error {
	h.mu.Lock()
	block, entered := h.block, h.entered
	h.entered = nil
	h.mu.Unlock()
	h.commits.Add(1)
	if entered != nil {
		close(entered)
	}
	if block != nil {
		<-block
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fail
}

// holdNext makes the next commit wait until the returned release is called;
// the returned channel closes when that commit has started.
func (h *hookControl) holdNext() (started <-chan struct{}, release func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	block := make(chan struct{})
	entered := make(chan struct{})
	h.block, h.entered = block, entered
	return entered, func() {
		h.mu.Lock()
		h.block = nil
		h.mu.Unlock()
		close(block)
	}
}

func (h *hookControl) failWith(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fail = err
}

type authOutcome struct {
	res payment.AuthorizeResult
	err error
}

func (v *env) authorizeAsync(req payment.AuthorizeRequest) <-chan authOutcome {
	ch := make(chan authOutcome, 1)
	go func() {
		res, err := v.eng.Authorize(v.t.Context(), req)
		ch <- authOutcome{res, err}
	}()
	return ch
}

// notDelivered fails the test if an answer arrives within a short while. A
// broken engine that released answers early is caught by this check most
// of the time; a correct engine always passes it.
func notDelivered(t *testing.T, what string, ch <-chan authOutcome) {
	t.Helper()
	select {
	case out := <-ch:
		t.Fatalf("%s: answer released while its commit was held: %+v, %v", what, out.res, out.err)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestNoAnswerBeforeCommitReturns(t *testing.T) {
	h := &hookControl{}
	v := newEnv(t, func(o *payment.Options) { payment.SetCommitHook(o, h.hook) })

	started, release := h.holdNext()
	first := v.authorizeAsync(sale(term1, "held-1", 100))
	<-started // the commit holding held-1 is in flight
	// Requests arriving now are decided but wait for the next commit, which
	// cannot start before the held one returned.
	second := v.authorizeAsync(sale(term1, "held-2", 200))
	dup := v.authorizeAsync(sale(term1, "held-1", 100))
	notDelivered(t, "held-1", first)
	notDelivered(t, "held-2", second)
	notDelivered(t, "duplicate of held-1", dup)
	if n := h.commits.Load(); n != 1 {
		t.Fatalf("commits started while one is held: got %d, want 1", n)
	}
	release()
	a, b, d := <-first, <-second, <-dup
	if a.err != nil || b.err != nil || d.err != nil {
		t.Fatalf("after release: %v, %v, %v", a.err, b.err, d.err)
	}
	if a.res.ResponseCode != "00" || b.res.ResponseCode != "00" {
		t.Errorf("after release: got %s and %s, want approvals", a.res.ResponseCode, b.res.ResponseCode)
	}
	if !d.res.Replayed || d.res.AuthorizationID != a.res.AuthorizationID {
		t.Errorf("duplicate: got %+v, want a replay of %s", d.res, a.res.AuthorizationID)
	}
}

func TestFailedCommitFailsRequestsAndStopsEngine(t *testing.T) {
	h := &hookControl{}
	v := newEnv(t, func(o *payment.Options) { payment.SetCommitHook(o, h.hook) })
	ctx := t.Context()
	ok := v.authorize(sale(term1, "before", 100))
	mustCode(t, ok, "00")

	// Hold a commit, queue more decisions behind it, then fail it.
	started, release := h.holdNext()
	failing := v.authorizeAsync(sale(term1, "lost-1", 100))
	<-started
	behind := v.authorizeAsync(sale(term1, "lost-2", 100))
	notDelivered(t, "lost-2", behind)
	boom := errors.New("disk on fire")
	h.failWith(boom)
	release()
	for name, ch := range map[string]<-chan authOutcome{"lost-1": failing, "lost-2": behind} {
		out := <-ch
		if !errors.Is(out.err, payment.ErrUnavailable) {
			t.Errorf("%s: got %+v, %v; want ErrUnavailable, never an approval", name, out.res, out.err)
		}
	}
	if v.eng.Healthy() {
		t.Errorf("Healthy after a failed commit: got true, want false")
	}
	// Nothing is decided any more, replays included, until reopened.
	for _, req := range []payment.AuthorizeRequest{sale(term1, "after", 100), sale(term1, "before", 100)} {
		if _, err := v.eng.Authorize(ctx, req); !errors.Is(err, payment.ErrUnavailable) {
			t.Errorf("%s after failure: got %v, want ErrUnavailable", req.RequestID, err)
		}
	}
	if err := v.eng.Close(); !errors.Is(err, payment.ErrUnavailable) || !errors.Is(err, boom) {
		t.Errorf("Close: got %v, want ErrUnavailable wrapping the storage error", err)
	}

	// Reopen: the failed decisions left nothing behind, the earlier one is
	// intact, and retries are decided afresh.
	h.failWith(nil)
	v.audit.Close()
	v.db.Close()
	v.eng = nil
	v.open()
	txs := v.transactions(payment.TxFilter{TerminalID: term1})
	if len(txs) != 1 || txs[0].RequestID != "before" {
		t.Fatalf("ledger after reopen: got %d transactions, want only \"before\"", len(txs))
	}
	if r := v.authorize(sale(term1, "before", 100)); !r.Replayed || r.AuthorizationID != ok.AuthorizationID {
		t.Errorf("replay after reopen: got %+v, want %s replayed", r, ok.AuthorizationID)
	}
	r := v.authorize(sale(term1, "lost-1", 100))
	if r.Replayed || r.ResponseCode != "00" {
		t.Errorf("retry of a failed request: got %+v, want a fresh approval", r)
	}
	if b := v.openBatch(term1); b.ServerTotals.SaleCount != 2 || b.ServerTotals.SaleAmount != 200 {
		t.Errorf("batch after reopen: got %+v, want 2 sales of 200 in all", b.ServerTotals)
	}
}

// TestGroupCommit checks that decisions made while a commit is in flight
// share the next commit.
func TestGroupCommit(t *testing.T) {
	h := &hookControl{}
	v := newEnv(t, func(o *payment.Options) { payment.SetCommitHook(o, h.hook) })
	started, release := h.holdNext()
	first := v.authorizeAsync(sale(term1, "g-0", 1))
	<-started
	const n = 50
	outs := make([]<-chan authOutcome, n)
	for i := range n {
		outs[i] = v.authorizeAsync(sale(term1, fmt.Sprint("g-", i+1), 1))
	}
	// Wait until all of them are queued behind the held commit: the engine
	// decides them while the commit is held, so their approvals show in
	// Stats before any is released.
	for {
		if n2, _ := v.eng.Stats(); n2 == n+1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	release()
	if out := <-first; out.err != nil {
		t.Fatal(out.err)
	}
	for _, ch := range outs {
		if out := <-ch; out.err != nil || out.res.ResponseCode != "00" {
			t.Fatalf("got %+v, %v", out.res, out.err)
		}
	}
	cs := v.eng.CommitStats()
	if cs.Decisions != n+1 || cs.Commits != 2 || cs.MaxDecisions != n {
		t.Errorf("commit stats: got %+v, want %d decisions in 2 commits, the second holding %d", cs, n+1, n)
	}
}
