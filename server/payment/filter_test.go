package payment_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/payment"
)

// waitFiltering waits until the engine's request filter is in use.
func waitFiltering(t *testing.T, v *env) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, filtering, err := v.eng.DiskLookups(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if filtering {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatal("the request filter was not built within 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// After a restart every idempotency entry is on disk. Once the request
// filter is built, new request IDs are decided without reading the disk,
// while replays and late originals of tombstones are still found there.
func TestFilterSkipsDiskForNewRequestIDs(t *testing.T) {
	v := newEnv(t)
	ctx := t.Context()
	first := map[string]payment.AuthorizeResult{}
	for i := range 10 {
		id := fmt.Sprint("old-", i)
		first[id] = v.authorize(sale(term1, id, 100))
	}
	v.reverse(term1, "rv-ghost", "ghost")
	v.reopen()
	before := waitFiltering(t, v)
	for i := range 20 {
		mustCode(t, v.authorize(sale(term1, fmt.Sprint("new-", i), 100)), payment.CodeApproved)
	}
	after, _, err := v.eng.DiskLookups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The filter's false positives are about 1%: 40 lookups (entry and
	// tombstone of each) may read the disk once or twice, not 40 times.
	if after-before > 3 {
		t.Errorf("20 new request IDs read the disk %d times, want almost none", after-before)
	}
	for id, res := range first {
		got := v.authorize(sale(term1, id, 100))
		if !got.Replayed || got.AuthorizationID != res.AuthorizationID {
			t.Fatalf("replay of %s: got %+v, want %s replayed", id, got, res.AuthorizationID)
		}
	}
	mustCode(t, v.authorize(sale(term1, "ghost", 100)), payment.CodeInvalidTransaction)
}

// A filter sized for few request IDs fills up and is rebuilt from the disk
// again and again while entries leave memory early: no replay may be lost
// on the way, neither of the entries written while a build ran.
func TestFilterRebuiltWhenFull(t *testing.T) {
	v := newEnv(t, func(o *payment.Options) {
		o.MaxEntries = 2
		payment.SetFilterCapacity(o, 4)
	})
	ctx := t.Context()
	first := map[string]payment.AuthorizeResult{}
	for i := range 40 {
		id := fmt.Sprint("r-", i)
		first[id] = v.authorize(sale(term1, id, 100))
		if i%7 == 0 {
			if err := v.eng.Housekeep(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := v.eng.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	waitFiltering(t, v)
	for id, res := range first {
		got := v.authorize(sale(term1, id, 100))
		if !got.Replayed || got.AuthorizationID != res.AuthorizationID {
			t.Fatalf("replay of %s: got %+v, want %s replayed", id, got, res.AuthorizationID)
		}
	}
}

// Request IDs recorded while the filter is built from disk, and dropped
// from memory before it is ready, are in the filter once it is.
func TestFilterKeepsRequestIDsOfItsBuild(t *testing.T) {
	var armed atomic.Bool
	gate := make(chan struct{})
	v := newEnv(t, func(o *payment.Options) {
		o.MaxEntries = 2
		payment.SetFilterHook(o, func() {
			if armed.Load() {
				<-gate
			}
		})
	})
	ctx := t.Context()
	v.authorize(sale(term1, "old", 100))
	// The first engine's build must be past the hook before it is armed,
	// or that build waits on the gate and Close (in reopen) waits on it.
	waitFiltering(t, v)
	armed.Store(true)
	v.reopen()
	mid := map[string]payment.AuthorizeResult{}
	for i := range 6 {
		id := fmt.Sprint("mid-", i)
		mid[id] = v.authorize(sale(term1, id, 100))
	}
	if err := v.eng.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, filtering, err := v.eng.DiskLookups(ctx); err != nil || filtering {
		t.Fatalf("filter in use before its build was let go: %v, %v", filtering, err)
	}
	close(gate)
	waitFiltering(t, v)
	for id, res := range mid {
		got := v.authorize(sale(term1, id, 100))
		if !got.Replayed || got.AuthorizationID != res.AuthorizationID {
			t.Fatalf("replay of %s: got %+v, want %s replayed", id, got, res.AuthorizationID)
		}
	}
}
