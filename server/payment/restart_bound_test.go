package payment_test

import (
	"fmt"
	"testing"

	"github.com/posfleet/posfleet/server/payment"
)

// Open reads no terminal's state and no idempotency entry: a terminal's
// state is read on its first request, and replays of requests decided
// before Open are answered from disk. Memory after Open holds only what
// was asked for since, however much the retention window holds.
func TestOpenLoadsTerminalsOnFirstRequest(t *testing.T) {
	v := newEnv(t)
	ctx := t.Context()
	const terminals = 5
	first := map[string]payment.AuthorizeResult{}
	for i := range terminals {
		id := fmt.Sprintf("T%07d", i+1)
		v.dir.set(basePolicy(id))
		for j := range 4 {
			res := v.authorize(sale(id, fmt.Sprint("r", j), 100))
			if j == 0 {
				first[id] = res
			}
		}
	}
	v.reopen()
	if n, err := v.eng.MemoryEntries(ctx); err != nil || n != 0 {
		t.Fatalf("entries in memory after Open: got %d, %v; want 0", n, err)
	}
	if n, err := v.eng.LoadedTerminals(ctx); err != nil || n != 0 {
		t.Fatalf("terminals in memory after Open: got %d, %v; want 0", n, err)
	}
	// A replay of a request decided before Open, on the terminal's first
	// request since.
	got := v.authorize(sale(term1, "r0", 100))
	if !got.Replayed || got.AuthorizationID != first[term1].AuthorizationID {
		t.Fatalf("replay after Open: got %+v, want %s replayed", got, first[term1].AuthorizationID)
	}
	if n, err := v.eng.LoadedTerminals(ctx); err != nil || n != 1 {
		t.Fatalf("terminals in memory after one request: got %d, %v; want 1", n, err)
	}
	// A reused request ID with other content is still told apart.
	if got := v.authorize(sale(term1, "r1", 999)); got.ResponseCode != payment.CodeDuplicateTransmission {
		t.Errorf("reused request ID after Open: got %s, want 94", got.ResponseCode)
	}
	// The open batch's totals count the sales before Open.
	if b := v.openBatch(term1); b.ServerTotals.SaleCount != 4 || b.ServerTotals.SaleAmount != 400 {
		t.Errorf("open batch after Open: got %+v, want 4 sales of 400", b.ServerTotals)
	}
	// A new sale goes on in the same batch.
	if res := v.authorize(sale(term1, "r9", 100)); res.Replayed || res.ResponseCode != payment.CodeApproved || res.BatchNumber != first[term1].BatchNumber {
		t.Errorf("new sale after Open: got %+v, want a fresh approval in batch %d", res, first[term1].BatchNumber)
	}
}
