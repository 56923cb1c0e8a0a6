// Package audit is posfleet's audit trail: every admin change, authentication
// failure, refused registration, identity collision and merchant-mismatch
// alert is recorded as an [Event] and can be listed newest first with filters.
//
// Events are written in batches by a background flusher (one synced commit per
// batch, not per event), so recording never waits on the disk:
//
//	log, err := audit.Open(db, logger)
//	log.Record(audit.Event{Type: audit.MerchantMismatch, TerminalID: tid, ...})
//	page, next, err := log.List(ctx, audit.Filter{Type: audit.MerchantMismatch}, 100, "")
//	log.Close() // flushes what is queued
package audit
