package audit

import "github.com/posfleet/posfleet/server/store"

// RecordSync writes evs in their own synced commit and returns once they
// are on disk, or with the error that kept them off it (then nothing is
// written or counted). Use it for an alert or a refusal whose answer must
// not leave before its event is durable, such as a merchant mismatch that
// a webhook reports: an event queued with Record is written in the next
// batch, up to 50 ms later, and a crash in between loses it.
//
// Like Record's batches it commits even while disk space is low: the
// store's reserve holds alerts. Times default to now. Each call costs one
// synced commit, so callers that can be flooded (a terminal repeating one
// claim) coalesce repeats before calling.
func (l *Log) RecordSync(evs ...Event) error {
	return l.commit(l.db.UpdateReserved, func(*store.Txn) error { return nil }, evs)
}
