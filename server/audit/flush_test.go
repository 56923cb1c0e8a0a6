package audit_test

import (
	"fmt"
	"testing"

	"github.com/posfleet/posfleet/server/audit"
)

// Flush with a full queue writes every queued event: drained at once into
// one commit, several thousand events were too big for the store and
// were lost.
func TestFlushFullQueueLosesNothing(t *testing.T) {
	log := openLog(t)
	const n = 12000 // more than the queue holds
	for i := range n {
		log.Record(audit.Event{Type: audit.BatchClosed, TerminalID: fmt.Sprintf("T%07d", i%2), MerchantID: "M1", Message: fmt.Sprint(i)})
	}
	if err := log.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := len(listAll(t, log, audit.Filter{}, 1000)); got != n {
		t.Fatalf("listed %d events after Flush, want %d", got, n)
	}
}
