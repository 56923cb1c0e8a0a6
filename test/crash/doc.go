// Package crash holds the crash test of posfleet's payment path: it builds
// the real posfleet binary, drives concurrent authorizations against it,
// kills it with SIGKILL several times, restarts it on the same data
// directory, and checks that every approval a terminal was told about is
// in the ledger exactly once, that no request was decided twice, and that
// every batch still balances against the ledger.
//
// A SIGKILL leaves the operating system's page cache intact, so this test
// cannot show that a commit reached the disk; the payment engine's own
// tests prove that no answer leaves before the commit holding its decision
// returned. What this test shows is that nothing acknowledged is lost or
// duplicated when the process dies at an arbitrary point, and that the
// state rebuilt on restart (idempotency, batches) agrees with the ledger.
//
// Besides, the disk-full test fills a tmpfs under the binary until writes are
// refused, and the audit test kills the binary under mixed admin load and
// checks that every acknowledged change has its audit event.
//
// Run it with:
//
//	go test ./test/crash/
package crash
