package store

import (
	"bytes"

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
	err = tx.iterateOpts(prefix, start, reverse, false, func(item *badger.Item, v []byte) error {
		key, value, ok = item.KeyCopy(nil), bytes.Clone(v), true
		return ErrStop
	})
	return key, value, ok, err
}
