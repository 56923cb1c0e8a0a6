// Package conformance is posfleet's kit for terminal vendors: it plays
// scripted adversarial scenarios against a terminal implementation under
// test and grades what the terminal did.
//
// Run starts a real posfleet server in memory and, in front of it on a
// loopback address, a proxy that forwards every call byte for byte except
// where a scenario injects a fault: a Register answer lost after the
// server registered; the first Authorize answer lost after the server
// decided; the next new authorization never reaching the server until the
// terminal reverses it; the one after decided, then its connection
// recycled with GOAWAY and the call answered Unavailable (SHUTTING_DOWN)
// with a RetryInfo; the first heartbeat rate limited with a RetryInfo; the
// first WatchConfig stream reset with Unavailable (SHUTTING_DOWN); the
// first pushed message with remote commands delivered twice; a config
// pushed with a heartbeat_interval below the protocol's minimum; a
// ROTATE_CREDENTIAL command pushed on the open stream, the
// RotateCredential answer lost, and the streams of the old credential
// ended Unauthenticated once the new one is used; a Refund declined 12 as
// for a sale reversed meanwhile; the terminal rebound before its batch
// close, so that the server closes the batch itself and answers
// BATCH_MISMATCH. The kit plays the operator too: it queues remote
// commands and publishes configs for the terminal once it has registered.
// Each proxied connection has a gRPC server of its own, so that one
// connection can be drained (GOAWAY) while the others carry on.
//
// The Report grades each scenario (same request_id and content on retry,
// reversal with reason TIMEOUT on an unknown outcome, no second charge
// under a new request_id, RetryInfo delays honoured, reconnect with
// known_version, a command acknowledged exactly once, a bad config
// rejected and a good one applied, a rotation completed and acknowledged
// with the new credential and the old one never used again, a declined refund taken as final, the open
// batch closed after a mismatch, the batch in balance) and passes only
// when all pass. Options.Scenarios selects which scenarios are played (by
// the IDs of ScenarioIDs); README.md beside this file lists what each
// plays and grades.
//
// The terminal under test learns the address, serial number, enrollment
// code, merchant, currency and the server's identity signing key from
// Target (Target.Env gives them as the POSFLEET_* variables the example
// terminals read). `posfleet
// conformance` runs the kit from the command line.
package conformance
