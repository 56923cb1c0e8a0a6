// Package pgha tests posfleet on a highly available PostgreSQL: a
// pg_auto_failover formation (monitor, primary, synchronous secondary)
// whose primary is killed under load. posfleet, connected through the
// formation's multi-host URL with target_session_attrs=read-write, must
// find the new primary by itself and lose nothing it acknowledged.
package pgha
