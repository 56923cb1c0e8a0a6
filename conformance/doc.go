// Package conformance is posfleet's kit for terminal vendors: it plays
// scripted adversarial scenarios against a terminal implementation under
// test and grades what the terminal did.
//
// Run starts a real posfleet server in memory and, in front of it on a
// loopback address, a proxy that forwards every call byte for byte except
// where the script injects a fault: the answer to the first Authorize is
// lost after the server decided it; the next new authorization never
// reaches the server until the terminal reverses it; the first heartbeat
// is rate limited with a google.rpc.RetryInfo; the first WatchConfig
// stream is reset with Unavailable (SHUTTING_DOWN); the first pushed
// message with remote commands is delivered twice. Once the terminal has
// registered, the kit plays the operator: it queues a remote command and
// publishes a config for the terminal. The Report grades each scenario
// (same request_id and content on retry, reversal with reason TIMEOUT on
// an unknown outcome, no second charge under a new request_id, the
// RetryInfo delay honoured, reconnect with known_version, a command
// acknowledged exactly once, the config acknowledged, the batch closed in
// balance after all that) and passes only when all pass.
//
// The terminal under test learns the address, serial number, enrollment
// code, merchant, currency and the server's identity signing key from
// Target (Target.Env gives them as the POSFLEET_* variables the example
// terminals read). `posfleet conformance` runs the kit from the command
// line.
package conformance
