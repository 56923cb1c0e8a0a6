package payment_test

import (
	"errors"
	"testing"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/payment"
)

// TestSlowSyncHoldsAnswers injects a slow fsync after the commit: no answer
// leaves before it returns, and after a reopen every answered request
// replays.
func TestSlowSyncHoldsAnswers(t *testing.T) {
	h := &hookControl{}
	v := newEnv(t, func(o *payment.Options) { payment.SetSyncHook(o, h.hook) })
	started, release := h.holdNext()
	first := v.authorizeAsync(sale(term1, "slow-1", 100))
	<-started // the commit of slow-1 returned; its sync is in flight
	second := v.authorizeAsync(sale(term1, "slow-2", 200))
	notDelivered(t, "slow-1", first)
	notDelivered(t, "slow-2", second)
	release()
	a, b := <-first, <-second
	if a.err != nil || b.err != nil {
		t.Fatalf("after the sync: %v, %v", a.err, b.err)
	}
	v.close()
	v.open()
	for _, c := range []struct {
		req payment.AuthorizeRequest
		out authOutcome
	}{{sale(term1, "slow-1", 100), a}, {sale(term1, "slow-2", 200), b}} {
		if r := v.authorize(c.req); !r.Replayed || r.AuthorizationID != c.out.res.AuthorizationID {
			t.Errorf("%s after reopen: got %+v, want %s replayed", c.req.RequestID, r, c.out.res.AuthorizationID)
		}
	}
}

// TestFailedSyncAcknowledgesNothing injects a failing fsync: the requests
// fail with ErrUnavailable, never an approval, and the engine refuses
// until reopened.
func TestFailedSyncAcknowledgesNothing(t *testing.T) {
	h := &hookControl{}
	v := newEnv(t, func(o *payment.Options) { payment.SetSyncHook(o, h.hook) })
	ok := v.authorize(sale(term1, "ok", 100))
	h.failWith(errors.New("fsync: input/output error"))
	if r, err := v.eng.Authorize(t.Context(), sale(term1, "unsynced", 100)); !errors.Is(err, payment.ErrUnavailable) {
		t.Fatalf("with a failing sync: got %+v, %v; want ErrUnavailable", r, err)
	}
	if v.eng.Healthy() {
		t.Error("Healthy after a failed sync: got true, want false")
	}
	h.failWith(nil)
	v.close()
	v.open()
	if r := v.authorize(sale(term1, "ok", 100)); !r.Replayed || r.AuthorizationID != ok.AuthorizationID {
		t.Errorf("acknowledged request after reopen: got %+v, want %s replayed", r, ok.AuthorizationID)
	}
}

// TestBatchCloseEventCommittedWithTheClose checks that the audit event of a
// batch close is on disk when the close is answered: listed without a
// Flush.
func TestBatchCloseEventCommittedWithTheClose(t *testing.T) {
	v := newEnv(t)
	ctx := t.Context()
	v.authorize(sale(term1, "a", 1000))
	if _, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term1, RequestID: "c1", BatchNumber: 1,
		TerminalTotals: payment.BatchTotals{SaleCount: 5, SaleAmount: 1}}); err != nil {
		t.Fatal(err)
	}
	evs, _, err := v.audit.List(ctx, audit.Filter{TerminalID: term1}, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Type != audit.BatchOutOfBalance {
		t.Fatalf("events on disk when the close was answered: got %+v, want one BatchOutOfBalance", evs)
	}
	if got := v.audit.Count(audit.BatchOutOfBalance); got != 1 {
		t.Errorf("count: got %d, want 1", got)
	}
}
