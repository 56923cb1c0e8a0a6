package store

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// First returns the first key with the prefix at or after start (the
// prefix's first key when start is nil) and a copy of its value; ok is
// false when there is none. Unlike Iterate it reads no value but that
// one, so a search that seeks many times (a binary search over ordered
// keys) costs one read per seek.
func (tx *Txn) First(prefix, start []byte) (key, value []byte, ok bool, err error) {
	if start == nil {
		start = prefix
	}
	return tx.seekOne(prefix, start, false)
}

// Last returns the last key with the prefix at or before start (the
// prefix's last key when start is nil) and a copy of its value; ok is
// false when there is none. See First.
func (tx *Txn) Last(prefix, start []byte) (key, value []byte, ok bool, err error) {
	return tx.seekOne(prefix, start, true)
}

func (tx *Txn) seekOne(prefix, start []byte, reverse bool) (key, value []byte, ok bool, err error) {
	err = tx.scan(prefix, start, reverse, false, func(k, v []byte) error {
		key, value, ok = bytes.Clone(k), bytes.Clone(v), true
		return ErrStop
	})
	return key, value, ok, err
}

// scan is a pass that reads no value ahead of fn, and none at all with
// keysOnly (fn then gets a nil value), on either backend.
func (tx *Txn) scan(prefix, start []byte, reverse, keysOnly bool, fn func(key, value []byte) error) error {
	if tx.alt != nil {
		return tx.alt.iterate(prefix, start, reverse, keysOnly, func(k, v []byte, _ time.Time) error { return fn(k, v) })
	}
	return tx.iterateOpts(prefix, start, reverse, false, func(item *badger.Item, v []byte) error { return fn(item.Key(), v) })
}

// Sparsest tells which of several ordered indexes holds the fewest keys
// just below a position: each prefix is that of keys ending in a
// big-endian uint64 (a sequence number, an ID), and of each the width
// keys below below are read (the newest when below is the largest
// uint64). The index whose width-th key holds the smallest number is the
// sparsest there, the one to read to find a match of all of them in the
// fewest keys; one with fewer than width keys below wins at once. Keys
// of a longer prefix that shares an index's bytes are skipped. It returns
// the position of the sparsest in prefixes and how many keys it read.
func (tx *Txn) Sparsest(prefixes [][]byte, below uint64, width int) (best, read int, err error) {
	bestAt := uint64(1<<64 - 1)
	for i, p := range prefixes {
		var start []byte
		if below != 1<<64-1 {
			start = AppendUint64(append([]byte{}, p...), max(below, 1)-1)
		}
		n, at := 0, uint64(0)
		err := tx.scan(p, start, true, true, func(k, _ []byte) error {
			if len(k) != len(p)+8 {
				return nil
			}
			read++
			n++
			if at = binary.BigEndian.Uint64(k[len(p):]); n == width {
				return ErrStop
			}
			return nil
		})
		if err != nil {
			return 0, read, err
		}
		if n < width {
			return i, read, nil
		}
		if at < bestAt {
			best, bestAt = i, at
		}
	}
	return best, read, nil
}
