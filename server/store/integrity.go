package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
)

// ErrCorrupt is returned when the database on disk is damaged: Badger found
// a checksum mismatch or a missing or unreadable file while opening it, the
// watermark file is missing or damaged, or a domain package found its own
// records inconsistent. The error text names the file and the damage where
// they are known. The way back is a restore from backup (posfleet restore);
// posfleet verify scans a data directory offline.
var ErrCorrupt = errors.New("store: database is damaged")

// ErrReadOnlyReplay is returned by a read-only Open of a database whose
// write-ahead log Badger must cut back before it can be read: after any
// crash (the log file is preallocated and ends in zeros), or after damage
// to it. Only a read-write Open can replay it.
var ErrReadOnlyReplay = errors.New("store: the write-ahead log needs a read-write open to be replayed")

// openError describes a failure to open an existing database. Apart from
// a directory held by another process and missing permissions, Badger fails
// to open a database it created only when its files are damaged: a table or
// MANIFEST checksum mismatch, a table the MANIFEST lists but the directory
// lacks, an unreadable write-ahead log.
func openError(dir string, err error) error {
	msg := err.Error()
	if isBadger(err, badger.ErrTruncateNeeded) {
		return fmt.Errorf("%w: %s: %v", ErrReadOnlyReplay, dir, err)
	}
	if errors.Is(err, fs.ErrPermission) || strings.Contains(msg, "directory lock") {
		return fmt.Errorf("store: open %s: %w", dir, err)
	}
	return fmt.Errorf("%w: %s: %v; restore the data directory from a backup (posfleet restore), posfleet verify --data-dir shows what is damaged", ErrCorrupt, dir, err)
}

// isBadger reports whether err is or wraps target. Badger wraps many of its
// errors into new ones that keep only the text (y.Wrapf), so the text is
// checked too.
func isBadger(err, target error) bool {
	return errors.Is(err, target) || strings.Contains(err.Error(), target.Error())
}

// WatermarkFile is the name of the watermark file in a data directory.
const WatermarkFile = "WATERMARK"

// The watermark file holds two slots; each write goes to the slot not
// holding the newest value, so a write torn by a crash leaves the previous
// value readable. A slot is:
//
//	magic "PFWM" | generation (8 bytes) | value length (2) | value | zeros | CRC-32C of the rest (4)
//
// An all-zero slot has never been written.
const (
	wmMagic    = "PFWM"
	wmSlotSize = 128
	wmMaxValue = wmSlotSize - len(wmMagic) - 8 - 2 - 4
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Watermark is a small file beside Badger's files that a domain package
// uses to record, durably and outside Badger's write-ahead log, how far its
// data has been acknowledged, so that a write-ahead log that lost its tail
// (Badger replays a damaged log up to the first bad entry and drops the
// rest) is found at the next start. It is created with the database: a
// database whose watermark file is missing is damaged. Methods are safe for
// concurrent use; Store calls are serialized.
type Watermark struct {
	mu      sync.Mutex // guards f, gen and next
	f       *os.File
	path    string
	gen     uint64 // generation of the newest slot written
	next    int    // slot the next Store writes
	value   []byte // newest value loaded or stored
	existed bool   // the database existed when the file was opened
}

// openWatermark opens the watermark file of the database in dir, creating it
// with a new database. It reads the file so that damage is reported at open.
func openWatermark(dir string, readOnly bool) (*Watermark, error) {
	existed, err := Exists(dir)
	if err != nil {
		return nil, err
	}
	if !existed && readOnly {
		return nil, fmt.Errorf("store: %s holds no database", dir)
	}
	path := filepath.Join(dir, WatermarkFile)
	flags := os.O_RDWR
	if readOnly {
		flags = os.O_RDONLY
	}
	if !existed && !readOnly {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		flags |= os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if errors.Is(err, fs.ErrNotExist) && existed {
		return nil, fmt.Errorf("%w: %s is missing (every database has one); restore the data directory from a backup (posfleet restore)", ErrCorrupt, path)
	}
	if err != nil {
		return nil, fmt.Errorf("store: watermark: %w", err)
	}
	w := &Watermark{f: f, path: path, existed: existed}
	if !existed && !readOnly {
		if err := w.init(dir); err != nil {
			f.Close()
			return nil, err
		}
		return w, nil
	}
	if err := w.load(); err != nil {
		f.Close()
		return nil, err
	}
	return w, nil
}

// init writes two empty slots and makes the new file durable.
func (w *Watermark) init(dir string) error {
	if _, err := w.f.WriteAt(make([]byte, 2*wmSlotSize), 0); err != nil {
		return fmt.Errorf("store: watermark: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("store: watermark: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: watermark: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("store: watermark: %w", err)
	}
	return nil
}

// load reads both slots and keeps the newest valid one.
func (w *Watermark) load() error {
	buf := make([]byte, 2*wmSlotSize)
	n, err := w.f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("store: watermark: %w", err)
	}
	if n != len(buf) {
		return fmt.Errorf("%w: %s is %d bytes long, want %d; restore the data directory from a backup (posfleet restore)", ErrCorrupt, w.path, n, len(buf))
	}
	var damaged int
	for i := range 2 {
		gen, value, state := decodeSlot(buf[i*wmSlotSize : (i+1)*wmSlotSize])
		switch state {
		case slotDamaged:
			damaged++
		case slotValid:
			if w.value == nil || gen > w.gen {
				w.gen, w.value, w.next = gen, value, 1-i
			}
		}
	}
	// One damaged slot is what a write torn by a crash leaves: that write
	// was never acknowledged, and the other slot holds the value before it.
	if damaged == 2 {
		return fmt.Errorf("%w: %s: both slots fail their checksum; restore the data directory from a backup (posfleet restore)", ErrCorrupt, w.path)
	}
	return nil
}

type slotState int

const (
	slotEmpty slotState = iota
	slotValid
	slotDamaged
)

// decodeSlot decodes one slot of the watermark file.
func decodeSlot(s []byte) (gen uint64, value []byte, state slotState) {
	empty := true
	for _, c := range s {
		if c != 0 {
			empty = false
			break
		}
	}
	if empty {
		return 0, nil, slotEmpty
	}
	body, sum := s[:len(s)-4], binary.BigEndian.Uint32(s[len(s)-4:])
	if string(body[:len(wmMagic)]) != wmMagic || crc32.Checksum(body, crcTable) != sum {
		return 0, nil, slotDamaged
	}
	gen = binary.BigEndian.Uint64(body[len(wmMagic):])
	n := int(binary.BigEndian.Uint16(body[len(wmMagic)+8:]))
	if n > wmMaxValue {
		return 0, nil, slotDamaged
	}
	off := len(wmMagic) + 10
	return gen, append([]byte{}, body[off:off+n]...), slotValid
}

// Load returns the value last stored, or nil when none has been.
func (w *Watermark) Load() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]byte(nil), w.value...)
}

// Store records value (at most 110 bytes) durably: when Store returns, the
// value is synced to disk.
func (w *Watermark) Store(value []byte) error {
	if len(value) > wmMaxValue {
		return fmt.Errorf("store: watermark value of %d bytes (at most %d)", len(value), wmMaxValue)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	s := make([]byte, wmSlotSize)
	copy(s, wmMagic)
	binary.BigEndian.PutUint64(s[len(wmMagic):], w.gen+1)
	binary.BigEndian.PutUint16(s[len(wmMagic)+8:], uint16(len(value)))
	copy(s[len(wmMagic)+10:], value)
	binary.BigEndian.PutUint32(s[wmSlotSize-4:], crc32.Checksum(s[:wmSlotSize-4], crcTable))
	if _, err := w.f.WriteAt(s, int64(w.next*wmSlotSize)); err != nil {
		return fmt.Errorf("store: watermark: %w", err)
	}
	if err := datasync(w.f); err != nil {
		return fmt.Errorf("store: watermark: %w", err)
	}
	w.gen++
	w.next = 1 - w.next
	w.value = append(w.value[:0], value...)
	return nil
}

// ReadWatermark reads the watermark file of the database in dir from disk,
// as another process sees it, and returns the value last stored (nil when
// none has been).
func ReadWatermark(dir string) ([]byte, error) {
	f, err := os.Open(filepath.Join(dir, WatermarkFile))
	if err != nil {
		return nil, fmt.Errorf("store: watermark: %w", err)
	}
	w := &Watermark{f: f, path: f.Name()}
	defer w.close()
	if err := w.load(); err != nil {
		return nil, err
	}
	return w.value, nil
}

// Path returns the watermark file's path.
func (w *Watermark) Path() string { return w.path }

func (w *Watermark) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.f.Close()
}

// Watermark returns the database's watermark file, or nil for a database
// held in memory.
func (db *DB) Watermark() *Watermark { return db.wm }

// checkTables verifies the checksums of the tables the MANIFEST lists
// before Badger opens them: Badger's own check at open panics in a
// goroutine of its own on some damage (a garbled block or footer), which
// would end the process without a word, and skips a table whose checksum
// does not match, which would serve a database with part of its data gone.
//
// A table recorded in vt as verified whose size and tail (last block,
// index and footer: all that Badger reads when it opens a table) still
// match the record is not read again, unless all is set; every other table
// is read and verified in full and recorded. Records of tables the MANIFEST
// no longer lists are dropped. verified, when set, is told of each table
// verified in full.
//
// A MANIFEST that does not parse is left for badger.Open to report. Tables
// not in the MANIFEST (left by a compaction cut short) are not checked:
// Badger deletes them.
func checkTables(bopts badger.Options, vt *verifiedTables, all bool, verified func(id uint64)) error {
	f, err := os.Open(filepath.Join(bopts.Dir, badger.ManifestFilename))
	if err != nil {
		return nil // badger.Open says what is wrong
	}
	defer f.Close()
	m, _, err := badger.ReplayManifestFile(f, bopts.ExternalMagicVersion, bopts)
	if err != nil {
		return nil // badger.Open says what is wrong
	}
	live := make(map[uint64]bool, len(m.Tables))
	for id := range m.Tables {
		live[id] = true
	}
	vt.keepOnly(live)
	now := time.Now()
	for _, id := range slices.Sorted(maps.Keys(live)) {
		path := table.NewFilename(id, bopts.Dir)
		if ti, ok := vt.get(id); ok && !all && sameTable(path, ti) {
			continue
		}
		vt.remove(id)
		ti, err := checkTable(path, id, tableOptions(bopts, m.Tables[id].Compression), now)
		if errors.Is(err, fs.ErrNotExist) {
			continue // badger.Open says the table is missing
		}
		if err != nil {
			return fmt.Errorf("%w: table %s (level %d): %v; restore the data directory from a backup (posfleet restore), posfleet verify --data-dir shows what is damaged",
				ErrCorrupt, path, m.Tables[id].Level, err)
		}
		vt.put(ti)
		if verified != nil {
			verified(id)
		}
	}
	return nil
}

// tableOptions are the options to read a table of the database bopts
// describes, written with the given compression, verifying every block.
func tableOptions(bopts badger.Options, compression options.CompressionType) table.Options {
	return table.Options{
		BlockSize:          bopts.BlockSize,
		BloomFalsePositive: bopts.BloomFalsePositive,
		ChkMode:            options.OnTableAndBlockRead,
		Compression:        compression,
	}
}

// checkTable reads the table at path, verifies its checksums and returns
// its identity for the record of verified tables. A missing file is an
// error wrapping fs.ErrNotExist.
func checkTable(path string, id uint64, opts table.Options, now time.Time) (ti tableIdentity, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return tableIdentity{}, err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("its blocks or index do not read back (%s)", firstLine(fmt.Sprint(r)))
		}
	}()
	t, err := table.OpenInMemoryTable(data, id, &opts)
	if err != nil {
		return tableIdentity{}, err
	}
	defer t.DecrRef()
	if err := t.VerifyChecksum(); err != nil {
		return tableIdentity{}, err
	}
	return identify(id, data, now)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
