package payment_test

import (
	"errors"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/payment"
)

// TestStoppedSignalsAFailedCommit checks the recovery signal: Stopped stays
// open while commits succeed and after a plain Close, closes when a commit
// fails, and an engine opened again on the same store — what the server's
// supervisor does, without closing the store — decides again from what is
// durable: an answer given before replays, and a request whose answer was
// lost after its commit reached the store replays instead of being decided
// twice.
func TestStoppedSignalsAFailedCommit(t *testing.T) {
	h := &hookControl{}
	v := newEnv(t, func(o *payment.Options) { payment.SetSyncHook(o, h.hook) })
	ok := v.authorize(sale(term1, "ok", 100))
	select {
	case <-v.eng.Stopped():
		t.Fatal("Stopped closed while commits succeed")
	default:
	}

	h.failWith(errors.New("fsync: input/output error"))
	if r, err := v.eng.Authorize(t.Context(), sale(term1, "unanswered", 100)); !errors.Is(err, payment.ErrUnavailable) {
		t.Fatalf("with a failing sync: got %+v, %v; want ErrUnavailable", r, err)
	}
	select {
	case <-v.eng.Stopped():
	case <-time.After(5 * time.Second):
		t.Fatal("Stopped not closed after a failed commit")
	}
	if err := v.eng.Failure(); !errors.Is(err, payment.ErrUnavailable) {
		t.Errorf("Failure after the stop: got %v, want ErrUnavailable", err)
	}

	h.failWith(nil)
	stopped := v.eng
	eng, err := payment.Open(t.Context(), v.db, v.audit, v.dir, v.opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	stopped.Close()
	v.eng = eng
	if r := v.authorize(sale(term1, "ok", 100)); !r.Replayed || r.AuthorizationID != ok.AuthorizationID {
		t.Errorf("answered request on the reopened engine: got %+v, want %s replayed", r, ok.AuthorizationID)
	}
	// The failed sync came after the store commit: the decision is
	// durable, so the retry gets it, not a second approval.
	if r := v.authorize(sale(term1, "unanswered", 100)); !r.Replayed {
		t.Errorf("retry of the request whose answer was lost: got %+v, want a replay of the durable decision", r)
	}
	if r := v.authorize(sale(term1, "after", 100)); r.Replayed || r.AuthorizationID == "" {
		t.Errorf("new request on the reopened engine: got %+v, want a fresh approval", r)
	}

	v.close()
	v.open()
	v.eng.Close()
	select {
	case <-v.eng.Stopped():
		t.Error("Stopped closed by a plain Close")
	default:
	}
}
