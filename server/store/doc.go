// Package store is posfleet's embedded storage: a thin layer over Badger that
// the domain packages use through [DB], [Txn] and plain byte keys and values.
// It is the only package that imports Badger.
//
// Open a database with [Open], write with [DB.Update] (every commit is synced
// to disk before it returns), read with [DB.View], and close it with
// [DB.Close]. A background loop reclaims value-log space.
//
// See the package example.
//
// Keys are built by the domain packages from prefixes such as "m/" and
// big-endian integers (see [AppendUint64]) so that prefix iteration is
// ordered. Values are each domain's own encoding and begin with a schema
// version byte.
package store
