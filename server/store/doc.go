// Package store is posfleet's storage: a thin layer over Badger (embedded,
// the default) or PostgreSQL that the domain packages use through [DB],
// [Txn] and plain byte keys and values. It is the only package that imports
// Badger or a PostgreSQL driver.
//
// Open a database with [Open] (Badger in a directory) or [OpenPostgres]
// (one table in a PostgreSQL database, schema migrations embedded and
// applied at open), write with [DB.Update] (every commit is durable before
// it returns), read with [DB.View], and close it with [DB.Close]. Both
// backends give the same transactions: a view is a snapshot, an update
// reads its own writes and commits all or nothing, and a conflict with a
// concurrent commit fails it with [ErrConflict]. A background loop
// reclaims value-log space (Badger) or deletes expired rows (PostgreSQL).
// Backups, the watermark file and the disk-space watch are Badger's alone.
//
// See the package example.
//
// Keys are built by the domain packages from prefixes such as "m/" and
// big-endian integers (see [AppendUint64]) so that prefix iteration is
// ordered. Values are each domain's own encoding and begin with a schema
// version byte.
package store
