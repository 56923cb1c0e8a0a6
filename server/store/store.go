package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/y"
)

// ErrNotFound is returned by Get when a key does not exist.
var ErrNotFound = errors.New("store: key not found")

// ErrCommit wraps the error of a commit that failed (a write or fsync
// error): nothing of the transaction is acknowledged, and the caller may
// retry once the storage recovers.
var ErrCommit = errors.New("store: commit failed")

// ErrTxnTooBig is returned when one transaction holds more writes than Badger
// can commit at once; callers split the work.
var ErrTxnTooBig = errors.New("store: transaction too big")

// ErrInUse is returned by Open when another process (another posfleet
// server, a backup) holds the database directory open.
var ErrInUse = errors.New("store: another process is using the database directory")

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
	// CommitFault, when set (tests only: a failpoint), runs in every
	// read-write transaction after its writes are staged and before the
	// commit; an error fails the commit as a failed write or fsync would,
	// and a slow hook is a slow fsync.
	CommitFault func() error
	// ReadOnly opens an existing database without changing it (offline
	// checks): writes fail, a write-ahead log that would need repair
	// makes Open fail instead of being cut back, and no GC runs.
	ReadOnly bool
	// VerifyAllTables makes Open read every table and verify all its
	// checksums, as if none had been verified before (posfleet verify,
	// serve --verify-all-tables). Otherwise a table recorded in the data
	// directory's VerifiedTablesFile whose size and tail (last block,
	// index and footer) still match the record is not read again.
	VerifyAllTables bool
	// TableCheckInterval is how often an open read-write database verifies
	// the tables written since it opened (flushes, compactions) and
	// records them, so that the next Open does not read them again; zero
	// leaves them to the next Open.
	TableCheckInterval time.Duration
	// TableReverifyAfter is how old a table's last verification may grow
	// before that check verifies it again in full, spread out so that
	// about TableCheckInterval/TableReverifyAfter of the tables' bytes are
	// read per check; zero never verifies a recorded table again while
	// running. Damage in a table after its verification, outside the part
	// a start reads, is found within about this time.
	TableReverifyAfter time.Duration
	// tableVerified, when set (tests only), is told of every table whose
	// checksums were verified in full (export_test.go).
	tableVerified func(id uint64)
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
		TableCheckInterval: time.Minute,
		TableReverifyAfter: 24 * time.Hour,
	}
}

// Validate reports whether the options are usable. It rejects the options
// on which Badger would fail to open or panic.
func (o Options) Validate() error {
	switch {
	case o.Dir == "" && !o.InMemory:
		return errors.New("store: Dir is required")
	case o.MemTableSize < minMemTableSize():
		return fmt.Errorf("store: MemTableSize must be at least %d bytes (%.1f MiB): Badger commits in batches of up to 15%% of a memtable, and a batch must hold a value of %d bytes",
			minMemTableSize(), float64(minMemTableSize())/(1<<20), badgerValueThreshold())
	case o.NumMemtables < 1:
		return errors.New("store: NumMemtables must be at least 1")
	case o.NumLevelZeroTables < 1:
		return errors.New("store: NumLevelZeroTables must be at least 1")
	case o.BlockCacheSize <= 0:
		return errors.New("store: BlockCacheSize must be positive: Badger compresses blocks and caches them decompressed")
	case o.IndexCacheSize < 0:
		return errors.New("store: IndexCacheSize must not be negative")
	case o.ValueLogFileSize < 1<<20 || o.ValueLogFileSize >= 2<<30:
		return errors.New("store: ValueLogFileSize must be between 1 MiB and 2 GiB")
	case o.GCInterval < 0:
		return errors.New("store: GCInterval must not be negative")
	case o.GCDiscardRatio <= 0 || o.GCDiscardRatio >= 1:
		return errors.New("store: GCDiscardRatio must be in (0, 1)")
	case o.TableCheckInterval < 0 || o.TableReverifyAfter < 0:
		return errors.New("store: TableCheckInterval and TableReverifyAfter must not be negative")
	}
	return nil
}

// badgerValueThreshold is the size in bytes above which Badger keeps a value
// in the value log rather than in the LSM tree. Open keeps Badger's default.
func badgerValueThreshold() int64 {
	return badger.DefaultOptions("").ValueThreshold
}

// minMemTableSize is the smallest memtable Badger opens with: it commits in
// batches of at most 15% of a memtable, and a batch must hold a value of
// badgerValueThreshold bytes.
func minMemTableSize() int64 {
	return (badgerValueThreshold()*100 + 14) / 15
}

// DB is an open database. It is safe for concurrent use.
type DB struct {
	bdb *badger.DB
	// alt, when set, is the engine that serves the database instead of
	// bdb (PostgreSQL, postgres.go); bdb is then nil.
	alt    backend
	opts   Options
	logger *slog.Logger
	// space, when set, refuses Update while disk space is low (space.go).
	space atomic.Pointer[Space]
	stop  chan struct{}
	wg    sync.WaitGroup
	wm    *Watermark // nil in memory
	lock  *os.File   // holds LockFile's flock; nil in memory
	// tables is the record of verified tables (verified.go); nil in memory.
	tables *tableChecker

	closeOnce sync.Once
	closeErr  error
}

// syncWrites is whether commits are fsynced before they return. It is false
// only in binaries built with the posfleet_unsafe_nosync tag (see
// nosync_unsafe.go), which exist for the power-loss test's control run.
var syncWrites = true

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
		WithSyncWrites(!opts.InMemory && syncWrites).
		WithNumVersionsToKeep(1).
		WithMemTableSize(opts.MemTableSize).
		WithNumMemtables(opts.NumMemtables).
		WithNumLevelZeroTables(opts.NumLevelZeroTables).
		WithNumLevelZeroTablesStall(opts.NumLevelZeroTables * 3).
		WithBlockCacheSize(opts.BlockCacheSize).
		WithIndexCacheSize(opts.IndexCacheSize).
		WithValueLogFileSize(opts.ValueLogFileSize).
		WithNumCompactors(2).
		WithLogger(badgerLogger{logger.With("component", "badger")}).
		// Every block's checksum is verified when it is read. Whole
		// tables are verified by openTables before Badger opens them,
		// once per table (verified.go), not by Badger at every open.
		WithChecksumVerificationMode(options.OnBlockRead).
		WithReadOnly(opts.ReadOnly)
	if opts.InMemory {
		bopts = bopts.WithDir("").WithValueDir("")
	}
	var (
		lock *os.File
		wm   *Watermark
	)
	var tables *tableChecker
	if !opts.InMemory {
		var err error
		if lock, err = lockDir(opts.Dir, opts.ReadOnly); err != nil {
			return nil, err
		}
		if wm, err = openWatermark(opts.Dir, opts.ReadOnly); err != nil {
			unlock(lock)
			return nil, err
		}
	}
	if wm != nil {
		var err error
		if tables, err = openTables(opts, bopts, wm.existed, logger.With("component", "tables")); err != nil {
			wm.close()
			unlock(lock)
			return nil, err
		}
	}
	bdb, err := badger.Open(bopts)
	if err != nil {
		if wm != nil {
			wm.close()
		}
		unlock(lock)
		if strings.Contains(err.Error(), "Another process is using this Badger database") {
			return nil, fmt.Errorf("%w: %s", ErrInUse, opts.Dir)
		}
		if wm != nil && wm.existed {
			return nil, openError(opts.Dir, err)
		}
		return nil, fmt.Errorf("store: open %s: %w", opts.Dir, err)
	}
	if !syncWrites && !opts.InMemory {
		logger.Warn("UNSAFE: built with posfleet_unsafe_nosync, commits are not fsynced and a power cut loses acknowledged writes")
	}
	db := &DB{bdb: bdb, opts: opts, logger: logger, stop: make(chan struct{}), wm: wm, lock: lock, tables: tables}
	if opts.GCInterval > 0 && !opts.InMemory && !opts.ReadOnly {
		db.every(opts.GCInterval, func() { db.collectValueLog(opts.GCDiscardRatio) })
	}
	if opts.TableCheckInterval > 0 && tables != nil && !opts.ReadOnly {
		// Tables written by flushes and compactions since the last check
		// are verified and recorded (verified.go).
		db.every(opts.TableCheckInterval, func() { db.tables.checkNew(db.bdb, db.stop) })
	}
	return db, nil
}

// Exists reports whether dir holds a database, which Open would open rather
// than create.
func Exists(dir string) (bool, error) {
	_, err := os.Stat(filepath.Join(dir, badger.ManifestFilename))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("store: %w", err)
}

// every calls fn every interval until the DB closes, as one of db.wg's
// goroutines: the background work of a Badger database.
func (db *DB) every(interval time.Duration, fn func()) {
	db.wg.Add(1)
	go func() {
		defer db.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-db.stop:
				return
			case <-t.C:
			}
			fn()
		}
	}()
}

// collectValueLog rewrites value-log files with much stale data.
func (db *DB) collectValueLog(ratio float64) {
	if db.CheckSpace() != nil {
		return // a rewrite writes before it frees; wait for space
	}
	for n := 0; n < 16; n++ { // each successful run reclaims one file
		err := db.bdb.RunValueLogGC(ratio)
		if err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				db.logger.Warn("value log gc failed", "err", err)
			}
			return
		}
	}
}

// Close stops background work and closes the database, flushing memtables.
// It is safe to call more than once.
func (db *DB) Close() error {
	if db.alt != nil {
		return db.alt.close()
	}
	db.closeOnce.Do(func() {
		close(db.stop)
		db.wg.Wait()
		if err := db.bdb.Close(); err != nil {
			db.closeErr = fmt.Errorf("store: close: %w", err)
		}
		if db.wm != nil {
			db.wm.close()
		}
		unlock(db.lock)
	})
	return db.closeErr
}

// Update runs fn in a read-write transaction and commits it; the commit is
// synced to disk before Update returns. If fn returns an error nothing is
// written. While disk space is low (see WatchSpace) it returns ErrDiskLow
// and writes nothing.
func (db *DB) Update(fn func(tx *Txn) error) error {
	if err := db.CheckSpace(); err != nil {
		return err
	}
	return db.UpdateReserved(fn)
}

// UpdateReserved is Update that commits even while disk space is low: for
// writes that finish work already decided (a payment group commit, an audit
// batch), which the reserve is sized to hold.
func (db *DB) UpdateReserved(fn func(tx *Txn) error) error {
	if db.alt != nil {
		return db.alt.update(fn)
	}
	var fnErr error
	err := db.bdb.Update(func(btx *badger.Txn) error {
		if fnErr = fn(&Txn{btx: btx}); fnErr != nil {
			return fnErr
		}
		if db.opts.CommitFault != nil {
			return db.opts.CommitFault()
		}
		return nil
	})
	if err != nil && fnErr == nil {
		return fmt.Errorf("%w: %w", ErrCommit, mapErr(err))
	}
	return mapErr(err)
}

// View runs fn in a read-only snapshot.
func (db *DB) View(fn func(tx *Txn) error) error {
	if db.alt != nil {
		return db.alt.view(fn)
	}
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

// ErrNotBackup is returned by Restore for input that does not begin with a
// backup header: not a backup at all, or one written before the format had a
// version.
var ErrNotBackup = errors.New("store: not a posfleet backup, or one written before format 1")

// ErrCorruptBackup is returned by Restore for a backup that is cut short or
// does not match its checksum.
var ErrCorruptBackup = errors.New("store: backup is truncated or corrupt")

// A backup is a header, a payload and a trailer:
//
//	header   "PFBACKUP", then the format version (4 bytes, big-endian)
//	payload  records: a length (8 bytes, little-endian), then a KVList protobuf;
//	         in format 2 (written since) compressed with zstd (see backup_stream.go)
//	trailer  the payload's length in bytes (8 bytes, big-endian), then its SHA-256
//
// The trailer is written last, so a backup cut short anywhere lacks a valid
// one.
const (
	backupMagic  = "PFBACKUP"
	backupFormat = 1
	headerSize   = len(backupMagic) + 4
	trailerSize  = 8 + sha256.Size

	// maxRecordSize bounds a payload record when restoring, so that a
	// corrupt length cannot make Restore allocate without limit. Badger's
	// backup stream sends batches of at most about 116 MiB (a 100 MiB soft
	// limit plus one 16 MiB list), and posfleet's values are small.
	maxRecordSize = 256 << 20
)

// Backup writes a full, consistent backup of the database to w: every key
// as of one read timestamp, taken when the backup starts, so it holds every
// commit acknowledged before the call and none of a commit made during it
// in part. It may run while the database is being written. If ctx is
// cancelled the backup stops and what was written lacks its trailer.
func (db *DB) Backup(ctx context.Context, w io.Writer) error {
	if db.alt != nil {
		return errBackupUnsupported
	}
	return db.writeBackupZstd(ctx, w)
}

// payloadWriter passes a backup's payload on to w, counting and hashing it.
// It fails once ctx is done, which stops Badger's stream.
type payloadWriter struct {
	ctx context.Context
	w   io.Writer
	sum hash.Hash
	n   uint64
}

func (pw *payloadWriter) Write(b []byte) (int, error) {
	if err := pw.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := pw.w.Write(b)
	pw.sum.Write(b[:n])
	pw.n += uint64(n)
	return n, err
}

// trailer returns the trailer for the payload written so far.
func (pw *payloadWriter) trailer() []byte {
	return pw.sum.Sum(binary.BigEndian.AppendUint64(nil, pw.n))
}

// Restore loads a backup written by Backup into the database, which is meant
// to be empty. It checks the backup while loading it: ErrNotBackup when r
// does not hold one, ErrCorruptBackup when it is cut short or damaged. The
// trailer is checked last, so after an error the database may hold part of
// the backup, and reads from it may block (Badger's Load stops without
// publishing its last version): close it and discard it.
func (db *DB) Restore(r io.Reader) error {
	if db.alt != nil {
		return errBackupUnsupported
	}
	format, err := readHeader(r)
	if err != nil {
		return err
	}
	payload := &payloadReader{r: r, buf: make([]byte, 64<<10), sum: sha256.New()}
	recs, closeRecs, err := records(format, payload)
	if err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	defer closeRecs()
	err = db.bdb.Load(recs, restorePendingWrites)
	if err == nil || errors.Is(err, ErrCorruptBackup) {
		return err
	}
	// A damaged payload can fail to parse before the trailer is reached:
	// read on, and report the damage if that is what it is.
	if _, cerr := io.Copy(io.Discard, payload); errors.Is(cerr, ErrCorruptBackup) {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return fmt.Errorf("store: restore: %w", err)
}

// readHeader reads a backup's header from r, checks it and returns the
// backup's format.
func readHeader(r io.Reader) (uint32, error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, ErrNotBackup
		}
		return 0, fmt.Errorf("store: restore: %w", err)
	}
	if string(h[:len(backupMagic)]) != backupMagic {
		return 0, ErrNotBackup
	}
	v := binary.BigEndian.Uint32(h[len(backupMagic):])
	if v != backupFormat && v != backupFormatZstd {
		return 0, fmt.Errorf("store: restore: backup format %d is not supported (this posfleet reads formats %d and %d)", v, backupFormat, backupFormatZstd)
	}
	return v, nil
}

// payloadReader reads a backup's payload: everything after the header except
// the last trailerSize bytes, which it holds back as the trailer. At the end
// of r it checks the payload's length and SHA-256 against the trailer and
// returns io.EOF only if they match.
type payloadReader struct {
	r    io.Reader
	buf  []byte // backing array of data
	data []byte // read from r and not yet returned, the trailer included
	eof  bool   // r is exhausted
	sum  hash.Hash
	n    uint64 // payload bytes returned
	err  error  // the result of the check, once made
}

func (p *payloadReader) Read(b []byte) (int, error) {
	for len(p.data) <= trailerSize && !p.eof {
		if err := p.fill(); err != nil {
			return 0, err
		}
	}
	if avail := len(p.data) - trailerSize; avail > 0 {
		n := copy(b, p.data[:avail])
		p.sum.Write(b[:n])
		p.n += uint64(n)
		p.data = p.data[n:]
		return n, nil
	}
	if p.err == nil {
		p.err = p.check()
	}
	return 0, p.err
}

// fill moves the unread bytes to the front of buf and reads more after them.
func (p *payloadReader) fill() error {
	m := copy(p.buf, p.data)
	n, err := p.r.Read(p.buf[m:])
	p.data = p.buf[:m+n]
	if errors.Is(err, io.EOF) {
		p.eof = true
		return nil
	}
	return err
}

// check compares the payload read with the trailer left in data.
func (p *payloadReader) check() error {
	if len(p.data) < trailerSize {
		return fmt.Errorf("%w: it ends before its trailer", ErrCorruptBackup)
	}
	if n := binary.BigEndian.Uint64(p.data); n != p.n {
		return fmt.Errorf("%w: no valid trailer (payload of %d bytes, trailer says %d)", ErrCorruptBackup, p.n, n)
	}
	if !bytes.Equal(p.sum.Sum(nil), p.data[8:]) {
		return fmt.Errorf("%w: SHA-256 of the payload does not match the trailer", ErrCorruptBackup)
	}
	return io.EOF
}

// recordReader passes a backup's payload on to Badger's Load, checking each
// record's length before Load sees it: Load allocates that much.
type recordReader struct {
	r      io.Reader
	head   [8]byte
	unread []byte // part of head not yet returned
	left   uint64 // bytes of the current record's body not yet returned
}

func (rr *recordReader) Read(b []byte) (int, error) {
	if len(rr.unread) == 0 && rr.left == 0 {
		if err := rr.next(); err != nil {
			return 0, err
		}
	}
	if len(rr.unread) > 0 {
		n := copy(b, rr.unread)
		rr.unread = rr.unread[n:]
		return n, nil
	}
	if uint64(len(b)) > rr.left {
		b = b[:rr.left]
	}
	n, err := rr.r.Read(b)
	rr.left -= uint64(n)
	if errors.Is(err, io.EOF) {
		if rr.left > 0 {
			return n, fmt.Errorf("%w: its last record is cut short", ErrCorruptBackup)
		}
		err = nil // the next call reports the end
	}
	return n, err
}

// next reads the next record's length. It returns io.EOF at the end of the
// payload.
func (rr *recordReader) next() error {
	if _, err := io.ReadFull(rr.r, rr.head[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: it ends inside a record length", ErrCorruptBackup)
		}
		return err
	}
	size := binary.LittleEndian.Uint64(rr.head[:])
	if size > maxRecordSize {
		return fmt.Errorf("%w: record of %d bytes (at most %d expected)", ErrCorruptBackup, size, maxRecordSize)
	}
	rr.unread, rr.left = rr.head[:], size
	return nil
}

// Txn is a transaction handed to Update and View callbacks. It must not be
// used after the callback returns.
type Txn struct {
	btx *badger.Txn
	// alt, when set, serves the transaction instead of btx (see DB.alt).
	alt txnBackend
}

// Get returns a copy of the value at key, or ErrNotFound.
func (tx *Txn) Get(key []byte) ([]byte, error) {
	if tx.alt != nil {
		return tx.alt.get(key)
	}
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
	if tx.alt != nil {
		return tx.alt.set(key, value, 0)
	}
	return mapErr(tx.btx.Set(key, value))
}

// SetWithTTL writes value at key for ttl: once it has passed, reads no
// longer see the key and compactions remove it, with no delete to write.
// The expiry is kept in whole seconds, rounded down; ttl must be positive.
func (tx *Txn) SetWithTTL(key, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("store: set %q: ttl %v is not positive", key, ttl)
	}
	if tx.alt != nil {
		return tx.alt.set(key, value, ttl)
	}
	return mapErr(tx.btx.SetEntry(badger.NewEntry(key, value).WithTTL(ttl)))
}

// Expiry returns when key expires, the zero time when it never does, or
// ErrNotFound.
func (tx *Txn) Expiry(key []byte) (time.Time, error) {
	if tx.alt != nil {
		return tx.alt.expiry(key)
	}
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
	if tx.alt != nil {
		return tx.alt.delete(key)
	}
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
	if tx.alt != nil {
		return tx.alt.iterate(prefix, nil, false, false, fn)
	}
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
	if tx.alt != nil {
		return tx.alt.iterate(prefix, start, reverse, false, func(k, v []byte, _ time.Time) error { return fn(k, v) })
	}
	return tx.iterateItems(prefix, start, reverse, func(item *badger.Item, v []byte) error {
		return fn(item.Key(), v)
	})
}

func (tx *Txn) iterateItems(prefix, start []byte, reverse bool, fn func(item *badger.Item, value []byte) error) error {
	// Reverse passes read the newest page of something and stop: reading
	// a hundred values ahead (Badger's default) costs more than the page.
	return tx.iterateOpts(prefix, start, reverse, !reverse, fn)
}

// iterateOpts is iterateItems, with values read ahead of fn (prefetch)
// for long passes or only as fn is called for short ones.
func (tx *Txn) iterateOpts(prefix, start []byte, reverse, prefetch bool, fn func(item *badger.Item, value []byte) error) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	opts.Reverse = reverse
	opts.PrefetchValues = prefetch
	seek, skip := start, []byte(nil)
	switch {
	case start != nil:
	case !reverse:
		seek = prefix
	default:
		// Start at the prefix's successor, the first key after every key
		// with the prefix, or at the very end when there is none. Badger's
		// iterator is not Valid on a key outside its prefix, so that is
		// widened to one the successor shares, and the successor itself is
		// skipped.
		seek = prefixSuccessor(prefix)
		skip = seek
		opts.Prefix = seek[:max(len(seek)-1, 0)]
	}
	it := tx.btx.NewIterator(opts)
	defer it.Close()
	it.Seek(seek)
	if skip != nil && it.Valid() && bytes.Equal(it.Item().Key(), skip) {
		it.Next()
	}
	for ; it.ValidForPrefix(prefix); it.Next() {
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

// prefixSuccessor returns the smallest key greater than every key with the
// prefix: the prefix up to its last byte below 0xFF, that byte incremented.
// It returns nil when there is none (the prefix is empty or all 0xFF).
func prefixSuccessor(prefix []byte) []byte {
	for i := len(prefix) - 1; i >= 0; i-- {
		if prefix[i] != 0xFF {
			succ := bytes.Clone(prefix[:i+1])
			succ[i]++
			return succ
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
	case errors.Is(err, badger.ErrConflict):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	case errors.Is(err, badger.ErrTxnTooBig):
		return fmt.Errorf("%w: %w", ErrTxnTooBig, err)
	case isBadger(err, y.ErrChecksumMismatch):
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
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
