// Package crash holds the crash test of posfleet: it builds the real
// posfleet binary, drives every kind of state against it (approvals,
// declines, reversals, refunds, batch closes, merchants, stores,
// provisioned, registered and suspended terminals, config publishes and
// their audit events; see test/internal/workload), kills it with SIGKILL
// at a random moment of each round, restarts it on the same data
// directory, and checks that every answer the server acknowledged is still
// there exactly: payments replay with the same authorization ID and
// decision, fleet objects and config versions exist, no request is in the
// ledger twice, and a request left without an answer is decided at most
// once when retried.
//
// The kill moments and the workload's mix come from one seed, logged at
// the start; POSFLEET_CRASH_SEED=N repeats a run.
//
// A SIGKILL leaves the operating system's page cache intact, so this test
// cannot show that a commit reached the disk; test/powerloss does, by
// dropping every write that was not fsynced.
//
// Besides, the disk-full test fills a tmpfs under the binary until writes are
// refused, and the audit test kills the binary under mixed admin load and
// checks that every acknowledged change has its audit event. The webhook
// test kills it while a delivery is in flight, right after an
// out-of-balance batch close, and checks that both events reach a local
// receiver after the restart, in order, the interrupted one with its
// original event ID.
//
// Run it with:
//
//	go test ./test/crash/
package crash
