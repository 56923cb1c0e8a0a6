package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// ErrNotFound is returned by Get when a key does not exist.
var ErrNotFound = errors.New("store: key not found")

// ErrTxnTooBig is returned when one transaction holds more writes than Badger
// can commit at once; callers split the work.
var ErrTxnTooBig = errors.New("store: transaction too big")

// Options configure a database. The zero value is not usable; start from
// DefaultOptions.
type Options struct {
	// Dir is the directory holding the database files. Created if missing.
	Dir string
	// InMemory keeps everything in memory (tests only): nothing is durable.
	InMemory bool
	// MemTableSize is the size of each memtable in bytes.
	MemTableSize int64
	// NumMemtables is how many memtables may be held before writes stall.
	NumMemtables int
	// NumLevelZeroTables is how many flushed memtables collect on level 0
	// before they are compacted into level 1; writes stall at three times
	// as many. More tables mean fewer, larger compactions (less CPU per
	// write) and more tables for a read to check.
	NumLevelZeroTables int
	// BlockCacheSize bounds the block cache in bytes.
	BlockCacheSize int64
	// IndexCacheSize bounds the index and bloom-filter cache in bytes.
	IndexCacheSize int64
	// ValueLogFileSize is the size of each value-log file in bytes.
	ValueLogFileSize int64
	// GCInterval is how often the value-log GC runs; zero disables it.
	GCInterval time.Duration
	// GCDiscardRatio is the share of stale data that makes a value-log file
	// worth rewriting.
	GCDiscardRatio float64
}

// DefaultOptions returns settings sized for a small machine: bounded memory
// (16 MiB memtables, 32 MiB block cache, 16 MiB index cache), one version per
// key, synced writes and a value-log GC every five minutes. Level 0 holds up
// to 8 tables before compaction: payments write many small records, and in
// the Authorize benchmark 8 instead of 3 cut compaction CPU per
// authorization from about 10 µs to 5–6 µs.
func DefaultOptions(dir string) Options {
	return Options{
		Dir:                dir,
		MemTableSize:       16 << 20,
		NumMemtables:       3,
		NumLevelZeroTables: 8,
		BlockCacheSize:     32 << 20,
		IndexCacheSize:     16 << 20,
		ValueLogFileSize:   128 << 20,
		GCInterval:         5 * time.Minute,
		GCDiscardRatio:     0.5,
	}
}

// Validate reports whether the options are usable.
func (o Options) Validate() error {
	switch {
	case o.Dir == "" && !o.InMemory:
		return errors.New("store: Dir is required")
	case o.MemTableSize < 1<<20:
		return errors.New("store: MemTableSize must be at least 1 MiB")
	case o.NumMemtables < 1:
		return errors.New("store: NumMemtables must be at least 1")
	case o.NumLevelZeroTables < 1:
		return errors.New("store: NumLevelZeroTables must be at least 1")
	case o.BlockCacheSize < 0 || o.IndexCacheSize < 0:
		return errors.New("store: cache sizes must not be negative")
	case o.ValueLogFileSize < 1<<20 || o.ValueLogFileSize >= 2<<30:
		return errors.New("store: ValueLogFileSize must be between 1 MiB and 2 GiB")
	case o.GCInterval < 0:
		return errors.New("store: GCInterval must not be negative")
	case o.GCDiscardRatio <= 0 || o.GCDiscardRatio >= 1:
		return errors.New("store: GCDiscardRatio must be in (0, 1)")
	}
	return nil
}

// DB is an open database. It is safe for concurrent use.
type DB struct {
	bdb    *badger.DB
	logger *slog.Logger
	stop   chan struct{}
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Open opens (or creates) the database described by opts.
func Open(opts Options, logger *slog.Logger) (*DB, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	bopts := badger.DefaultOptions(opts.Dir).
		WithInMemory(opts.InMemory).
		WithSyncWrites(!opts.InMemory).
		WithNumVersionsToKeep(1).
		WithMemTableSize(opts.MemTableSize).
		WithNumMemtables(opts.NumMemtables).
		WithNumLevelZeroTables(opts.NumLevelZeroTables).
		WithNumLevelZeroTablesStall(opts.NumLevelZeroTables * 3).
		WithBlockCacheSize(opts.BlockCacheSize).
		WithIndexCacheSize(opts.IndexCacheSize).
		WithValueLogFileSize(opts.ValueLogFileSize).
		WithNumCompactors(2).
		WithLogger(badgerLogger{logger.With("component", "badger")})
	if opts.InMemory {
		bopts = bopts.WithDir("").WithValueDir("")
	}
	bdb, err := badger.Open(bopts)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", opts.Dir, err)
	}
	db := &DB{bdb: bdb, logger: logger, stop: make(chan struct{})}
	if opts.GCInterval > 0 && !opts.InMemory {
		db.wg.Add(1)
		go db.gcLoop(opts.GCInterval, opts.GCDiscardRatio)
	}
	return db, nil
}

// gcLoop rewrites value-log files with much stale data until the DB closes.
func (db *DB) gcLoop(every time.Duration, ratio float64) {
	defer db.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-t.C:
		}
		for n := 0; n < 16; n++ { // each successful run reclaims one file
			err := db.bdb.RunValueLogGC(ratio)
			if err != nil {
				if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
					db.logger.Warn("value log gc failed", "err", err)
				}
				break
			}
		}
	}
}

// Close stops background work and closes the database, flushing memtables.
// It is safe to call more than once.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		close(db.stop)
		db.wg.Wait()
		if err := db.bdb.Close(); err != nil {
			db.closeErr = fmt.Errorf("store: close: %w", err)
		}
	})
	return db.closeErr
}

// Update runs fn in a read-write transaction and commits it; the commit is
// synced to disk before Update returns. If fn returns an error nothing is
// written.
func (db *DB) Update(fn func(tx *Txn) error) error {
	err := db.bdb.Update(func(btx *badger.Txn) error { return fn(&Txn{btx: btx}) })
	return mapErr(err)
}

// View runs fn in a read-only snapshot.
func (db *DB) View(fn func(tx *Txn) error) error {
	return mapErr(db.bdb.View(func(btx *badger.Txn) error { return fn(&Txn{btx: btx}) }))
}

// Get returns a copy of the value stored at key, or ErrNotFound.
func (db *DB) Get(key []byte) ([]byte, error) {
	var out []byte
	err := db.View(func(tx *Txn) error {
		v, err := tx.Get(key)
		out = v
		return err
	})
	return out, err
}

// Backup writes a full, consistent backup of the database to w.
func (db *DB) Backup(ctx context.Context, w io.Writer) error {
	stream := db.bdb.NewStream()
	stream.LogPrefix = "backup"
	stream.SinceTs = 0
	if _, err := stream.Backup(w, 0); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	return ctx.Err()
}

// Restore loads a backup written by Backup into the database. It is meant for
// an empty database.
func (db *DB) Restore(r io.Reader) error {
	if err := db.bdb.Load(r, 256); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	return nil
}

// Txn is a transaction handed to Update and View callbacks. It must not be
// used after the callback returns.
type Txn struct {
	btx *badger.Txn
}

// Get returns a copy of the value at key, or ErrNotFound.
func (tx *Txn) Get(key []byte) ([]byte, error) {
	item, err := tx.btx.Get(key)
	if err != nil {
		return nil, mapErr(err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("store: read %q: %w", key, err)
	}
	return v, nil
}

// Set writes value at key. Both slices must not be changed until the
// transaction ends.
func (tx *Txn) Set(key, value []byte) error {
	return mapErr(tx.btx.Set(key, value))
}

// SetWithTTL writes value at key for ttl: once it has passed, reads no
// longer see the key and compactions remove it, with no delete to write.
// The expiry is kept in whole seconds, rounded down; ttl must be positive.
func (tx *Txn) SetWithTTL(key, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("store: set %q: ttl %v is not positive", key, ttl)
	}
	return mapErr(tx.btx.SetEntry(badger.NewEntry(key, value).WithTTL(ttl)))
}

// Expiry returns when key expires, the zero time when it never does, or
// ErrNotFound.
func (tx *Txn) Expiry(key []byte) (time.Time, error) {
	item, err := tx.btx.Get(key)
	if err != nil {
		return time.Time{}, mapErr(err)
	}
	return expiry(item), nil
}

func expiry(item *badger.Item) time.Time {
	if at := item.ExpiresAt(); at > 0 {
		return time.Unix(int64(at), 0)
	}
	return time.Time{}
}

// Delete removes key.
func (tx *Txn) Delete(key []byte) error {
	return mapErr(tx.btx.Delete(key))
}

// Iterate calls fn for every key with the given prefix in key order, starting
// at start (or at the prefix when start is nil). Iteration stops early when fn
// returns ErrStop (Iterate then returns nil) or any other error (returned).
// key and value are valid only during the call.
func (tx *Txn) Iterate(prefix, start []byte, fn func(key, value []byte) error) error {
	return tx.iterate(prefix, start, false, fn)
}

// IterateExpiry is Iterate that also passes each key's expiry (the zero
// time for keys that never expire).
func (tx *Txn) IterateExpiry(prefix []byte, fn func(key, value []byte, expires time.Time) error) error {
	return tx.iterateItems(prefix, nil, false, func(item *badger.Item, v []byte) error {
		return fn(item.Key(), v, expiry(item))
	})
}

// IterateReverse is Iterate in descending key order; start, when given, is the
// first key visited (inclusive) if present.
func (tx *Txn) IterateReverse(prefix, start []byte, fn func(key, value []byte) error) error {
	return tx.iterate(prefix, start, true, fn)
}

// ErrStop ends an iteration early without error.
var ErrStop = errors.New("store: stop iteration")

func (tx *Txn) iterate(prefix, start []byte, reverse bool, fn func(key, value []byte) error) error {
	return tx.iterateItems(prefix, start, reverse, func(item *badger.Item, v []byte) error {
		return fn(item.Key(), v)
	})
}

func (tx *Txn) iterateItems(prefix, start []byte, reverse bool, fn func(item *badger.Item, value []byte) error) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	opts.Reverse = reverse
	it := tx.btx.NewIterator(opts)
	defer it.Close()
	seek := start
	if seek == nil {
		seek = prefix
		if reverse {
			// Seek to the last key with the prefix: prefix followed by 0xFF...
			seek = append(bytes.Clone(prefix), bytes.Repeat([]byte{0xFF}, 16)...)
		}
	}
	for it.Seek(seek); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		err := item.Value(func(v []byte) error { return fn(item, v) })
		if errors.Is(err, ErrStop) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return ErrNotFound
	case errors.Is(err, badger.ErrTxnTooBig):
		return fmt.Errorf("%w: %w", ErrTxnTooBig, err)
	}
	return err
}

// AppendUint64 appends v big-endian, so that keys sort numerically.
func AppendUint64(b []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(b, v)
}

// Key joins parts into a key, separating them with '/'.
func Key(parts ...string) []byte {
	n := len(parts)
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			b = append(b, '/')
		}
		b = append(b, p...)
	}
	return b
}

// badgerLogger adapts slog to Badger's logger interface. Badger's info
// chatter is logged at debug level. Badger logs a few debug lines on every
// commit, so messages are formatted only when their level is enabled.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a) }
func (b badgerLogger) Infof(f string, a ...any)    { b.log(slog.LevelDebug, f, a) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug, f, a) }

func (b badgerLogger) log(level slog.Level, f string, a []any) {
	ctx := context.Background()
	if !b.l.Enabled(ctx, level) {
		return
	}
	b.l.Log(ctx, level, strings.TrimRight(fmt.Sprintf(f, a...), "\n"))
}
