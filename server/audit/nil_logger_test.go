package audit_test

import (
	"testing"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// A log opened without a logger used to panic on its first failed write
// (here: the store closed under it) instead of dropping the batch quietly.
func TestNilLoggerFailedWriteDoesNotPanic(t *testing.T) {
	db := storetest.Open(t)
	log, err := audit.Open(t.Context(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	log.Record(audit.Event{Type: audit.BackupTaken, Actor: "system"})
	if err := log.Flush(t.Context()); err != nil {
		t.Logf("Flush after the store closed: %v", err)
	}
	log.Close()
	log.Record(audit.Event{Type: audit.BackupTaken, Actor: "system"}) // after Close: dropped, logged
}
