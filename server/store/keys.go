package store

import (
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// IterateKeys calls fn for every key with the prefix, in ascending order,
// without reading values: for passes over many keys whose values are not
// needed. fn returns ErrStop to stop early; the key is valid only during
// the call.
func (tx *Txn) IterateKeys(prefix []byte, fn func(key []byte) error) error {
	return tx.IterateKeysFrom(prefix, prefix, fn)
}

// IterateKeysFrom is IterateKeys from the first key at or after start.
func (tx *Txn) IterateKeysFrom(prefix, start []byte, fn func(key []byte) error) error {
	if tx.alt != nil {
		return tx.alt.iterate(prefix, start, false, true, func(k, _ []byte, _ time.Time) error { return fn(k) })
	}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	opts.PrefetchValues = false
	it := tx.btx.NewIterator(opts)
	defer it.Close()
	for it.Seek(start); it.ValidForPrefix(prefix); it.Next() {
		err := fn(it.Item().Key())
		if errors.Is(err, ErrStop) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}
