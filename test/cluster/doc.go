// Package cluster holds the cluster test of posfleet on PostgreSQL: it
// builds the real binary, starts three `posfleet serve --store postgres`
// nodes on one throwaway database (internal/pgtest), one active and two
// hot standbys, drives the workload of test/internal/workload across all
// three through the Go SDK's multi-target dialing, kills the active node
// with SIGKILL mid-run, and checks that a standby takes over within
// seconds, that terminals carry on through it, and that every answer the
// cluster acknowledged is there exactly once: payments replay with the
// same authorization ID and decision, no request is in the ledger twice.
//
// A second test drives `posfleet loadgen` (the fleet model) across the
// three nodes and kills the active one mid-run: the load generator
// finishes, every batch closes in balance, and the ledger, read back from
// the node that took over and verified whole once the nodes stopped, holds
// to the unit what the terminals counted: their sales, refunds and
// reversals, and their approvals plus those whose answer was lost and
// which the SDK reversed.
//
// Without PostgreSQL installed the test skips, saying what to install;
// under CI=true it fails instead.
package cluster
