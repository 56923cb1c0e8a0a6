package store

import "errors"

// ErrClosed is returned by Writable after Close.
var ErrClosed = errors.New("store: database closed")

// Size returns the database's size on disk: the LSM tree's tables and the
// value log. Badger refreshes these figures about once a minute, so they
// suit metrics, not space checks (see WatchSpace for those).
// A PostgreSQL database reports zero: its size is PostgreSQL's to report.
func (db *DB) Size() (lsm, vlog int64) {
	if db.alt != nil {
		return 0, 0
	}
	return db.bdb.Size()
}

// Writable reports whether the database accepts writes now: it is open and
// not refusing writes for want of disk space (see WatchSpace). It returns
// ErrClosed after Close and ErrDiskLow while space is low.
//
// On PostgreSQL it pings the database: ErrClosed after Close, an error
// while the database cannot be reached.
func (db *DB) Writable() error {
	if db.alt != nil {
		return db.alt.writable()
	}
	if db.bdb.IsClosed() {
		return ErrClosed
	}
	return db.CheckSpace()
}
