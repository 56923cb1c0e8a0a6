package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/fb"
	"github.com/dgraph-io/badger/v4/table"
)

// VerifiedTablesFile is the name of the file in a data directory that
// records the tables whose checksums have been verified in full, so that
// Open reads each immutable table once instead of at every start.
const VerifiedTablesFile = "verified-tables"

// The record file is
//
//	magic "PFVT" | version (2 bytes) | count (4) | count entries | CRC-32C of everything before it (4)
//
// and an entry (vtEntrySize bytes) is
//
//	table ID (8) | size (8) | tail offset (8) | SHA-256 of the tail (32) | verified at, Unix seconds (8)
//
// all big-endian. The tail of a table is everything from the start of its
// last data block to the end of the file: the last block, the index (block
// offsets, bloom filter, key count) and the footer with the index's
// checksum. It is exactly what Badger reads when it opens a table.
const (
	vtMagic     = "PFVT"
	vtVersion   = 1
	vtHeader    = len(vtMagic) + 2 + 4
	vtEntrySize = 8 + 8 + 8 + sha256.Size + 8
)

// tableIdentity is what the record remembers of a verified table: enough
// to tell cheaply, at the next start, whether the file is still the one
// that was verified.
type tableIdentity struct {
	ID         uint64
	Size       int64
	TailOffset int64
	TailSum    [sha256.Size]byte
	VerifiedAt time.Time
}

// verifiedTables is the in-memory copy of the record file of one data
// directory. Its methods are safe for concurrent use; saves are serialized.
type verifiedTables struct {
	dir string

	mu     sync.Mutex // guards tables and dirty, and serializes saves
	tables map[uint64]tableIdentity
	dirty  bool // tables differs from the file
}

// errRecordDamaged marks a record file that exists but does not decode.
var errRecordDamaged = errors.New("the record of verified tables is damaged")

// loadVerifiedTables reads the record file in dir. A missing file is an
// empty record. A file that does not decode (cut short, garbled, a wrong
// checksum) is also an empty record, returned with an error wrapping
// errRecordDamaged for the caller to log: every table is then verified
// again, nothing is trusted.
func loadVerifiedTables(dir string) (*verifiedTables, error) {
	vt := &verifiedTables{dir: dir, tables: map[uint64]tableIdentity{}}
	b, err := os.ReadFile(filepath.Join(dir, VerifiedTablesFile))
	if errors.Is(err, fs.ErrNotExist) {
		return vt, nil
	}
	if err != nil {
		return vt, fmt.Errorf("store: %w", err)
	}
	tables, err := decodeVerifiedTables(b)
	if err != nil {
		vt.dirty = true // rewrite it
		return vt, fmt.Errorf("%w: %s: %v", errRecordDamaged, filepath.Join(dir, VerifiedTablesFile), err)
	}
	vt.tables = tables
	return vt, nil
}

// decodeVerifiedTables decodes the contents of a record file.
func decodeVerifiedTables(b []byte) (map[uint64]tableIdentity, error) {
	if len(b) < vtHeader+4 {
		return nil, fmt.Errorf("%d bytes, too short", len(b))
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return nil, errors.New("checksum mismatch")
	}
	if string(body[:len(vtMagic)]) != vtMagic {
		return nil, errors.New("bad magic")
	}
	if v := binary.BigEndian.Uint16(body[len(vtMagic):]); v != vtVersion {
		return nil, fmt.Errorf("version %d, want %d", v, vtVersion)
	}
	n := int(binary.BigEndian.Uint32(body[len(vtMagic)+2:]))
	if len(body) != vtHeader+n*vtEntrySize {
		return nil, fmt.Errorf("%d bytes for %d entries", len(b), n)
	}
	tables := make(map[uint64]tableIdentity, n)
	for e := body[vtHeader:]; len(e) > 0; e = e[vtEntrySize:] {
		ti := tableIdentity{
			ID:         binary.BigEndian.Uint64(e),
			Size:       int64(binary.BigEndian.Uint64(e[8:])),
			TailOffset: int64(binary.BigEndian.Uint64(e[16:])),
			VerifiedAt: time.Unix(int64(binary.BigEndian.Uint64(e[24+sha256.Size:])), 0),
		}
		copy(ti.TailSum[:], e[24:])
		if ti.Size <= 0 || ti.TailOffset < 0 || ti.TailOffset >= ti.Size {
			return nil, fmt.Errorf("table %d: size %d, tail at %d", ti.ID, ti.Size, ti.TailOffset)
		}
		tables[ti.ID] = ti
	}
	return tables, nil
}

// encodeVerifiedTables encodes a record file, its entries in table order.
func encodeVerifiedTables(tables map[uint64]tableIdentity) []byte {
	b := make([]byte, vtHeader, vtHeader+len(tables)*vtEntrySize+4)
	copy(b, vtMagic)
	binary.BigEndian.PutUint16(b[len(vtMagic):], vtVersion)
	binary.BigEndian.PutUint32(b[len(vtMagic)+2:], uint32(len(tables)))
	for _, id := range slices.Sorted(maps.Keys(tables)) {
		ti := tables[id]
		b = binary.BigEndian.AppendUint64(b, ti.ID)
		b = binary.BigEndian.AppendUint64(b, uint64(ti.Size))
		b = binary.BigEndian.AppendUint64(b, uint64(ti.TailOffset))
		b = append(b, ti.TailSum[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(ti.VerifiedAt.Unix()))
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// get returns the record of table id.
func (vt *verifiedTables) get(id uint64) (tableIdentity, bool) {
	vt.mu.Lock()
	defer vt.mu.Unlock()
	ti, ok := vt.tables[id]
	return ti, ok
}

// put records a verified table.
func (vt *verifiedTables) put(ti tableIdentity) {
	vt.mu.Lock()
	defer vt.mu.Unlock()
	vt.tables[ti.ID] = ti
	vt.dirty = true
}

// remove drops the record of table id.
func (vt *verifiedTables) remove(id uint64) {
	vt.mu.Lock()
	defer vt.mu.Unlock()
	if _, ok := vt.tables[id]; ok {
		delete(vt.tables, id)
		vt.dirty = true
	}
}

// keepOnly drops the records of every table live does not hold.
func (vt *verifiedTables) keepOnly(live map[uint64]bool) {
	vt.mu.Lock()
	defer vt.mu.Unlock()
	for id := range vt.tables {
		if !live[id] {
			delete(vt.tables, id)
			vt.dirty = true
		}
	}
}

// all returns the records.
func (vt *verifiedTables) all() []tableIdentity {
	vt.mu.Lock()
	defer vt.mu.Unlock()
	return slices.Collect(maps.Values(vt.tables))
}

// ids returns the recorded table IDs in ascending order.
func (vt *verifiedTables) ids() []uint64 {
	vt.mu.Lock()
	defer vt.mu.Unlock()
	return slices.Sorted(maps.Keys(vt.tables))
}

// save writes the record file when it changed since it was loaded or last
// saved: to a temporary file that is synced, renamed over the record and
// made durable by syncing the directory, so that a crash leaves either
// the old record or the new one, never a mix (and a torn temporary file
// is never read). Concurrent saves are serialized.
func (vt *verifiedTables) save() error {
	vt.mu.Lock()
	defer vt.mu.Unlock()
	if !vt.dirty {
		return nil
	}
	if err := writeFileAtomic(vt.dir, VerifiedTablesFile, encodeVerifiedTables(vt.tables)); err != nil {
		return fmt.Errorf("store: record of verified tables: %w", err)
	}
	vt.dirty = false
	return nil
}

// writeFileAtomic replaces dir/name with data: it writes dir/name.tmp,
// syncs it, renames it over dir/name and syncs dir.
func writeFileAtomic(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// tableTail returns where the tail of the table in data starts: the offset
// of its last data block (of its index when it has no block). It parses the
// footer and index the way Badger does, so call it only on a table whose
// checksums were verified.
func tableTail(data []byte) (int64, error) {
	n := len(data)
	if n < 8 {
		return 0, fmt.Errorf("%d bytes, too short for a table", n)
	}
	chkLen := int(binary.BigEndian.Uint32(data[n-4:]))
	if chkLen < 0 || chkLen > n-8 {
		return 0, fmt.Errorf("checksum length %d in a table of %d bytes", chkLen, n)
	}
	pos := n - 4 - chkLen - 4
	indexLen := int(binary.BigEndian.Uint32(data[pos:]))
	if indexLen < 0 || indexLen > pos {
		return 0, fmt.Errorf("index length %d in a table of %d bytes", indexLen, n)
	}
	indexStart := pos - indexLen
	index := fb.GetRootAsTableIndex(data[indexStart:pos], 0)
	blocks := index.OffsetsLength()
	if blocks == 0 {
		return int64(indexStart), nil
	}
	var ko fb.BlockOffset
	if !index.Offsets(&ko, blocks-1) || int(ko.Offset()) > indexStart {
		return 0, errors.New("the last block's offset does not read")
	}
	return int64(ko.Offset()), nil
}

// sameTable reports whether the table file at path still has the size and
// tail recorded in ti, reading only the tail. Any error (the file missing
// or cut short) is a mismatch: the caller verifies the table in full,
// which says what is wrong.
func sameTable(path string, ti tableIdentity) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() != ti.Size {
		return false
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, ti.TailOffset, ti.Size-ti.TailOffset)); err != nil {
		return false
	}
	return bytes.Equal(h.Sum(nil), ti.TailSum[:])
}

// identify returns the identity of the verified table id held in data.
func identify(id uint64, data []byte, now time.Time) (tableIdentity, error) {
	tail, err := tableTail(data)
	if err != nil {
		return tableIdentity{}, err
	}
	return tableIdentity{
		ID:         id,
		Size:       int64(len(data)),
		TailOffset: tail,
		TailSum:    sha256.Sum256(data[tail:]),
		VerifiedAt: now,
	}, nil
}

// tableChecker keeps the record of verified tables of an open database.
type tableChecker struct {
	vt            *verifiedTables
	bopts         badger.Options
	interval      time.Duration   // Options.TableCheckInterval
	reverifyAfter time.Duration   // Options.TableReverifyAfter
	verified      func(id uint64) // Options.tableVerified
	logger        *slog.Logger
}

// openTables checks the tables of the database bopts describes before
// Badger opens them (see checkTables) and returns the record of verified
// tables. A record that is damaged is logged and verification starts over;
// a read-write open saves the record when it changed (a failure to save
// costs the next Open time, nothing else, so it is logged).
func openTables(opts Options, bopts badger.Options, existed bool, logger *slog.Logger) (*tableChecker, error) {
	vt, err := loadVerifiedTables(opts.Dir)
	if err != nil {
		logger.Warn("verifying every table", "err", err)
	}
	tc := &tableChecker{vt: vt, bopts: bopts, interval: opts.TableCheckInterval, reverifyAfter: opts.TableReverifyAfter,
		verified: opts.tableVerified, logger: logger}
	if !existed {
		return tc, nil
	}
	start := time.Now()
	verified := 0
	count := func(id uint64) {
		verified++
		if opts.tableVerified != nil {
			opts.tableVerified(id)
		}
	}
	if err := checkTables(bopts, vt, opts.VerifyAllTables, count); err != nil {
		return nil, err
	}
	logger.Info("tables checked", "tables", len(vt.ids()), "verified", verified,
		"all", opts.VerifyAllTables, "elapsed", time.Since(start).Round(time.Millisecond))
	if !opts.ReadOnly {
		if err := vt.save(); err != nil {
			logger.Warn("the record of verified tables was not saved; the next start verifies them again", "err", err)
		}
	}
	return tc, nil
}

// checkNew verifies the live tables of bdb that the record does not hold
// (written by flushes and compactions since the database opened), records
// them, drops the records of tables compactions removed, verifies again
// the recorded tables due for it (see reverify) and saves the record. It
// stops early when stop is closed.
func (tc *tableChecker) checkNew(bdb *badger.DB, stop <-chan struct{}) {
	live := map[uint64]bool{}
	for _, info := range bdb.Tables() {
		live[info.ID] = true
	}
	tc.vt.keepOnly(live)
	for _, id := range slices.Sorted(maps.Keys(live)) {
		select {
		case <-stop:
			return
		default:
		}
		if _, ok := tc.vt.get(id); !ok {
			tc.verify(bdb, id)
		}
	}
	tc.reverify(bdb, stop)
	if err := tc.vt.save(); err != nil {
		tc.logger.Warn("the record of verified tables was not saved; the next start verifies them again", "err", err)
	}
}

// verify verifies live table id in full and records it. A table that fails
// while Badger still lists it is logged as damaged and left out of the
// record, so that the next Open verifies it in full and refuses to start.
func (tc *tableChecker) verify(bdb *badger.DB, id uint64) {
	path := table.NewFilename(id, tc.bopts.Dir)
	ti, err := checkTable(path, id, tableOptions(tc.bopts, tc.bopts.Compression), time.Now())
	if err != nil {
		tc.vt.remove(id)
		// A compaction may have removed the table while it was read
		// (Badger truncates a table's file before removing it).
		if slices.ContainsFunc(bdb.Tables(), func(info badger.TableInfo) bool { return info.ID == id }) {
			tc.logger.Error("table damaged: its checksums do not verify; the next start will refuse the database; restore the data directory from a backup (posfleet restore)",
				"table", path, "err", err)
		}
		return
	}
	tc.vt.put(ti)
	if tc.verified != nil {
		tc.verified(id)
	}
}

// reverify verifies again, oldest first, the recorded tables last verified
// more than reverifyAfter ago: about interval/reverifyAfter of the recorded
// bytes per call (at least one table), so that each table is read again
// about every reverifyAfter and damage that came after its verification
// (in blocks a start does not read) is found within that time.
func (tc *tableChecker) reverify(bdb *badger.DB, stop <-chan struct{}) {
	if tc.reverifyAfter <= 0 {
		return
	}
	recs := tc.vt.all()
	slices.SortFunc(recs, func(a, b tableIdentity) int { return a.VerifiedAt.Compare(b.VerifiedAt) })
	var total int64
	for _, r := range recs {
		total += r.Size
	}
	budget := int64(float64(total) * (float64(tc.interval) / float64(tc.reverifyAfter)))
	due := time.Now().Add(-tc.reverifyAfter)
	var spent int64
	for _, r := range recs {
		if !r.VerifiedAt.Before(due) || spent > 0 && spent >= budget {
			return
		}
		select {
		case <-stop:
			return
		default:
		}
		spent += r.Size
		tc.verify(bdb, r.ID)
	}
}
