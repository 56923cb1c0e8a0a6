package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"time"
)

// ErrTargetNotEmpty is returned by Copy when the database to copy into
// already holds keys.
var ErrTargetNotEmpty = errors.New("store: the target database is not empty")

// Digest sums up a database's contents: how many live keys it holds and a
// SHA-256 over every key and value in key order. Two databases with the
// same digest hold the same keys and values.
type Digest struct {
	// Keys is the number of live keys.
	Keys int64
	// Bytes is the size of all keys and values.
	Bytes int64
	// SHA256 covers each key and value, each preceded by its length.
	SHA256 [sha256.Size]byte
}

// digester accumulates a Digest.
type digester struct {
	d   Digest
	sum hash.Hash
	n   [8]byte
}

func newDigester() *digester { return &digester{sum: sha256.New()} }

func (g *digester) add(k, v []byte) {
	for _, b := range [][]byte{k, v} {
		binary.BigEndian.PutUint64(g.n[:], uint64(len(b)))
		g.sum.Write(g.n[:])
		g.sum.Write(b)
	}
	g.d.Keys++
	g.d.Bytes += int64(len(k) + len(v))
}

func (g *digester) digest() Digest {
	copy(g.d.SHA256[:], g.sum.Sum(nil))
	return g.d
}

// DigestOf reads every live key and value of db in one snapshot and
// returns their digest.
func DigestOf(ctx context.Context, db *DB) (Digest, error) {
	g := newDigester()
	err := db.View(func(tx *Txn) error {
		return tx.Iterate(nil, nil, func(k, v []byte) error {
			g.add(k, v)
			return ctx.Err()
		})
	})
	return g.digest(), err
}

// copyBatchBytes bounds the keys and values one transaction of Copy writes.
const (
	copyBatchBytes = 4 << 20
	copyBatchKeys  = 2000
)

// Copy copies every live key of src, with its value and expiry, into dst,
// which must be empty (ErrTargetNotEmpty), in transactions of bounded size.
// It reads src in one snapshot, then reads dst back and checks that both
// hold the same keys and values; it returns src's digest. A key whose
// expiry passes during the copy may be missing from dst: the check then
// fails, and so does Copy. If Copy fails, dst holds part of the data.
func Copy(ctx context.Context, dst, src *DB) (Digest, error) {
	empty := true
	err := dst.View(func(tx *Txn) error {
		return tx.IterateKeys(nil, func([]byte) error { empty = false; return ErrStop })
	})
	if err != nil {
		return Digest{}, err
	}
	if !empty {
		return Digest{}, ErrTargetNotEmpty
	}
	g := newDigester()
	type entry struct {
		k, v    []byte
		expires time.Time
	}
	var batch []entry
	var size int
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := dst.Update(func(tx *Txn) error {
			for _, e := range batch {
				if e.expires.IsZero() {
					if err := tx.Set(e.k, e.v); err != nil {
						return err
					}
					continue
				}
				// Whole seconds, as stored; at least one, so that a key
				// about to expire keeps its value for the check.
				ttl := max(time.Until(e.expires).Truncate(time.Second)+time.Second, time.Second)
				if err := tx.SetWithTTL(e.k, e.v, ttl); err != nil {
					return err
				}
			}
			return nil
		})
		batch, size = batch[:0], 0
		return err
	}
	err = src.View(func(tx *Txn) error {
		return tx.IterateExpiry(nil, func(k, v []byte, expires time.Time) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			g.add(k, v)
			batch = append(batch, entry{bytes.Clone(k), bytes.Clone(v), expires})
			if size += len(k) + len(v); size >= copyBatchBytes || len(batch) >= copyBatchKeys {
				return flush()
			}
			return nil
		})
	})
	if err == nil {
		err = flush()
	}
	want := g.digest()
	if err != nil {
		return want, fmt.Errorf("store: copy: %w", err)
	}
	got, err := DigestOf(ctx, dst)
	if err != nil {
		return want, fmt.Errorf("store: copy: read the target back: %w", err)
	}
	if got != want {
		return want, fmt.Errorf("store: copy: the target holds %d keys (SHA-256 %x), the source %d (%x)", got.Keys, got.SHA256, want.Keys, want.SHA256)
	}
	return want, nil
}
