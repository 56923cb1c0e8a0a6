package payment_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/posfleet/posfleet/server/payment"
)

// authorizeAll sends one sale per terminal concurrently, so that group
// commits gather them.
func (v *env) authorizeAll(terms []string, round int) {
	v.t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(terms))
	for _, id := range terms {
		wg.Go(func() {
			res, err := v.eng.Authorize(v.t.Context(), sale(id, fmt.Sprintf("%s-r%d", id, round), 100))
			if err == nil && res.ResponseCode != payment.CodeApproved {
				err = fmt.Errorf("%s round %d: code %s", id, round, res.ResponseCode)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		v.t.Fatalf("Authorize: %v", err)
	}
}

// With more changed open batches than one store transaction takes, batch
// checkpoints are spread over several commits instead of failing the
// engine.
func TestCheckpointManyTerminals(t *testing.T) {
	const n, maxWrites = 1500, 256
	var mu sync.Mutex // guards largest
	largest := 0
	v := newEnv(t, func(o *payment.Options) {
		o.MaxBatchWrites = maxWrites
		payment.SetCommitWritesHook(o, func(n int) {
			mu.Lock()
			largest = max(largest, n)
			mu.Unlock()
		})
	})
	ctx := t.Context()
	terms := make([]string, n)
	for i := range terms {
		terms[i] = fmt.Sprintf("T%07d", i)
	}
	v.authorizeAll(terms, 1) // opens the batches
	v.authorizeAll(terms, 2) // changes every open batch
	for i := 0; ; i++ {
		if err := v.eng.Housekeep(ctx); err != nil {
			t.Fatalf("Housekeep: %v", err)
		}
		left, err := v.eng.CheckpointBacklog(ctx)
		if err != nil {
			t.Fatalf("CheckpointBacklog: %v", err)
		}
		if left == 0 {
			break
		}
		if i == 50 {
			t.Fatalf("%d batches still wait for a checkpoint", left)
		}
	}
	v.authorizeAll(terms, 3)
	v.reopen() // Close checkpoints every changed batch
	for _, id := range terms {
		if b := v.openBatch(id); b.ServerTotals.SaleCount != 3 || b.ServerTotals.SaleAmount != 300 {
			t.Fatalf("batch of %s after reopen: %+v", id, b.ServerTotals)
		}
	}
	v.authorizeAll(terms[:10], 4)
	mu.Lock()
	defer mu.Unlock()
	if largest > maxWrites {
		t.Errorf("a commit wrote %d keys, over MaxBatchWrites %d", largest, maxWrites)
	}
}
