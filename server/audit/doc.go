// Package audit is posfleet's audit trail: every admin change, authentication
// failure, refused registration, identity collision and merchant-mismatch
// alert is recorded as an [Event] and can be listed newest first with filters.
//
// An event that records a change (a merchant created, a terminal
// provisioned, a batch closed, ...) is committed with the change it records,
// in the same synced transaction ([Log.Commit], or [Log.Prepare],
// [Log.Stage] and [Log.Committed] for a caller with its own transaction): an
// acknowledged change has its event after any crash. Alerts and refusals
// (authentication failures, permission denials, refused registrations,
// identity collisions, merchant-mismatch alerts of the fleet) change nothing
// and may come in floods; they are written in batches by a background
// flusher (one synced commit per batch, not per event), so recording them
// never waits on the disk (see the package example).
//
// Queries ([Log.ListPage]) cost in proportion to the page they return: a
// filter by terminal, merchant or type reads its index (aux/, aum/, aut/,
// each in ID order), and a time range is turned into a range of IDs by a
// binary search over the trail, since event times follow IDs. A page whose
// filter no single index serves stops at a read budget and says how far
// back it searched.
package audit
