// Package loadgen is posfleet's load generator: it simulates a fleet of
// point-of-sale terminals against a posfleet server and measures latency
// honestly.
//
// # Open loop, timed from the intended send time
//
// A rate profile (Profile, a Pacer) gives the arrival rate r(t) as stages of
// constant rates or linear ramps. A Schedule turns it into arrival times —
// Poisson by default, uniform on request — and Run.Drive dispatches each
// arrival at its time whether or not earlier ones were answered. Every call
// is timed from its intended time, so a stalled server shows up in the tail
// instead of silently slowing the generator down (coordinated omission).
// Service time (actual send to response) and send-lag (intended time to
// actual send) are recorded separately. Each simulated user (terminal) works
// on one arrival at a time; arrivals that find it busy wait in its queue,
// and the wait counts as latency, as at a real checkout. A generator that
// falls behind — growing dispatch lag, full queues — says so in
// Result.Generator along with its own CPU use.
//
// # Recording and reports
//
// Calls are recorded in HdrHistograms per operation, outcome (ok, declined
// with a response code, or failed with a gRPC status code) and stage, one
// histogram set per recording shard, merged at the end. An interval log
// (.hlog) of per-second histograms allows windowed percentiles. A run ends
// with a Result that WriteReport stores as report.json, a self-contained
// HTML report with charts, and a text summary; SLOs such as
// "authorize.p99<=20ms" are checked against it.
//
// # Usage
//
// [Builtin] (or [ParseProfile]) gives a profile, [NewRun] a run of it,
// [Run.Drive] plays it against an [Executor] (a [Fleet], or a
// [HealthExecutor]), [Run.Finish] returns the [Result], [EvaluateSLOs]
// checks it and [WriteReport] stores it (see the NewRun example).
//
// The posfleet loadgen command wires this to a fleet simulation (Fleet):
// it provisions merchants, stores and terminals through the admin API,
// registers them, keeps their heartbeats and config watches going and runs
// a transaction mix — approvals, test-card declines, reversals, refunds —
// with one transaction in flight per terminal, then closes every batch and
// checks that it balances. Terminals talk through the client SDK, so they
// retry, resume and reverse as real terminals do. HealthExecutor drives the
// standard health check through the same machinery: the machine's ceiling
// that other results are quoted against.
package loadgen
