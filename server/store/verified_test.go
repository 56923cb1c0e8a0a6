package store_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/store"
)

// verifiedLog collects the tables an Open (and the database it opened)
// verified in full.
type verifiedLog struct {
	mu  sync.Mutex // guards ids
	ids []uint64
}

func (v *verifiedLog) add(id uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ids = append(v.ids, id)
}

func (v *verifiedLog) get() []uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Sorted(slices.Values(v.ids))
}

// openCounted opens the database in dir, with no background work unless
// set asks for it, and logs the tables it verifies in full.
func openCounted(t *testing.T, dir string, set func(o *store.Options)) (*store.DB, *verifiedLog, error) {
	t.Helper()
	opts := store.DefaultOptions(dir)
	opts.GCInterval = 0
	opts.TableCheckInterval = 0
	v := &verifiedLog{}
	store.SetTableVerified(&opts, v.add)
	if set != nil {
		set(&opts)
	}
	db, err := store.Open(opts, nil)
	return db, v, err
}

const keysPerTable = 2000

// tableKey and tableValue are the records batch writes: values of random
// bytes (from a fixed seed) that compression does not shrink, so that a
// table holds many blocks.
func tableKey(batch, i int) []byte { return fmt.Appendf(nil, "k/%02d/%05d", batch, i) }

func tableValue(batch, i int) []byte {
	r := rand.New(rand.NewPCG(uint64(batch), uint64(i)))
	v := make([]byte, 100)
	for j := range v {
		v[j] = byte(r.Uint32())
	}
	return v
}

// writeTable opens the database in dir, writes batch's records and closes
// it: Badger flushes them into one new table.
func writeTable(t *testing.T, dir string, batch int) {
	t.Helper()
	db, _, err := openCounted(t, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *store.Txn) error {
		for i := range keysPerTable {
			if err := tx.Set(tableKey(batch, i), tableValue(batch, i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// tableIDs returns the IDs of the table files in dir.
func tableIDs(t *testing.T, dir string) []uint64 {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, p := range paths {
		id, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(p), ".sst"), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// openAndClose opens the database in dir with set applied, closes it and
// returns the tables the Open verified in full.
func openAndClose(t *testing.T, dir string, set func(o *store.Options)) []uint64 {
	t.Helper()
	db, v, err := openCounted(t, dir, set)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return v.get()
}

func TestOpenVerifiesEachTableOnce(t *testing.T) {
	dir := t.TempDir()
	writeTable(t, dir, 0) // a new database: nothing to verify
	first := tableIDs(t, dir)
	if len(first) != 1 {
		t.Fatalf("tables after the first close: %v, want one", first)
	}
	if got := openAndClose(t, dir, nil); !slices.Equal(got, first) {
		t.Errorf("second open verified %v, want %v (the table is new to the record)", got, first)
	}
	writeTable(t, dir, 1) // its Open verifies nothing: the first table is recorded
	all := tableIDs(t, dir)
	if len(all) != 2 {
		t.Fatalf("tables: %v, want two", all)
	}
	if got, want := openAndClose(t, dir, nil), all[1:]; !slices.Equal(got, want) {
		t.Errorf("open after a new table verified %v, want only the new one %v", got, want)
	}
	if got := openAndClose(t, dir, nil); len(got) != 0 {
		t.Errorf("open with every table recorded verified %v, want none", got)
	}
	if got, err := store.RecordedTables(dir); err != nil || !slices.Equal(got, all) {
		t.Errorf("recorded tables: %v, %v; want %v", got, err, all)
	}
	all2 := func(o *store.Options) { o.VerifyAllTables = true }
	if got := openAndClose(t, dir, all2); !slices.Equal(got, all) {
		t.Errorf("open with VerifyAllTables verified %v, want every table %v", got, all)
	}

	// A read-only full pass (posfleet verify) reads every table and
	// leaves the record as it was.
	record, err := os.ReadFile(filepath.Join(dir, store.VerifiedTablesFile))
	if err != nil {
		t.Fatal(err)
	}
	readOnly := func(o *store.Options) { o.ReadOnly, o.VerifyAllTables = true, true }
	if got := openAndClose(t, dir, readOnly); !slices.Equal(got, all) {
		t.Errorf("read-only open with VerifyAllTables verified %v, want %v", got, all)
	}
	if after, err := os.ReadFile(filepath.Join(dir, store.VerifiedTablesFile)); err != nil || !bytes.Equal(after, record) {
		t.Errorf("a read-only open changed the record (err %v)", err)
	}
}

// copyDir copies the files of src into a new directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || e.Name() == "LOCK" {
			continue
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(out, in)
		in.Close()
		if err2 := out.Close(); err == nil {
			err = err2
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// tableLayout says where the parts of a table file are.
type tableLayout struct {
	size       int64
	tail       int64 // start of the last block
	indexStart int64
	indexLen   int64
}

func layoutOf(t *testing.T, path string) tableLayout {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tail, err := store.TableTail(path)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(len(data))
	chkLen := int64(binary.BigEndian.Uint32(data[n-4:]))
	indexLen := int64(binary.BigEndian.Uint32(data[n-8-chkLen:]))
	return tableLayout{size: n, tail: tail, indexStart: n - 8 - chkLen - indexLen, indexLen: indexLen}
}

func TestTableDamagedAfterRecording(t *testing.T) {
	base := t.TempDir()
	writeTable(t, base, 0)
	ids := tableIDs(t, base)
	if got := openAndClose(t, base, nil); !slices.Equal(got, ids) {
		t.Fatalf("recording open verified %v, want %v", got, ids)
	}
	l := layoutOf(t, store.TableFile(base, ids[0]))
	if l.tail < 4096 || l.indexStart <= l.tail {
		t.Fatalf("table layout %+v: want several blocks before the last one", l)
	}
	tests := []struct {
		name string
		at   int64
		// atOpen is set where the damage is in the part of the table the
		// record covers (last block, index, footer): Open verifies the
		// table in full and refuses it.
		atOpen bool
	}{
		{"footer", l.size - 2, true},
		{"index", l.indexStart + l.indexLen/2, true},
		{"last block", l.tail + 16, true},
		{"first block", 64, false},
		{"middle block", l.tail / 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, base)
			path := store.TableFile(dir, ids[0])
			if err := flip(path, tt.at); err != nil {
				t.Fatal(err)
			}
			db, v, err := openCounted(t, dir, nil)
			if tt.atOpen {
				if err == nil {
					db.Close()
					t.Fatalf("Open served a table damaged at %d (in the recorded tail)", tt.at)
				}
				if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), path) {
					t.Errorf("Open: %v; want store.ErrCorrupt naming %s", err, path)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v; want the damage outside the recorded tail left to reads", err)
			}
			if got := v.get(); len(got) != 0 {
				t.Errorf("Open verified %v, want none (the tail still matches)", got)
			}
			// Badger verifies each block's checksum when it reads it: a
			// damaged block is never served. Its records read as absent.
			unread := 0
			for i := range keysPerTable {
				got, err := db.Get(tableKey(0, i))
				switch {
				case errors.Is(err, store.ErrNotFound):
					unread++
				case err != nil:
					unread++
				case !bytes.Equal(got, tableValue(0, i)):
					t.Fatalf("key %d: read a changed value from a damaged table", i)
				}
			}
			if unread == 0 {
				t.Errorf("every record read back: want those of the damaged block refused")
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			// The full pass finds it.
			_, _, err = openCounted(t, dir, func(o *store.Options) { o.VerifyAllTables = true })
			if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), path) {
				t.Errorf("Open with VerifyAllTables: %v; want store.ErrCorrupt naming %s", err, path)
			}
		})
	}
}

func TestDamagedRecordVerifiesEverything(t *testing.T) {
	base := t.TempDir()
	writeTable(t, base, 0)
	writeTable(t, base, 1)
	ids := tableIDs(t, base)
	// The second write's Open recorded the first table.
	if got := openAndClose(t, base, nil); !slices.Equal(got, ids[1:]) {
		t.Fatalf("recording open verified %v, want %v", got, ids[1:])
	}
	record := func(dir string) string { return filepath.Join(dir, store.VerifiedTablesFile) }
	st, err := os.Stat(record(base))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		damage func(path string) error
	}{
		{"cut short", func(p string) error { return os.Truncate(p, st.Size()/2) }},
		{"empty", func(p string) error { return os.Truncate(p, 0) }},
		{"magic", func(p string) error { return flip(p, 0) }},
		{"an entry's size", func(p string) error { return flip(p, 10+15) }},
		{"an entry's tail checksum", func(p string) error { return flip(p, 10+30) }},
		{"checksum", func(p string) error { return flip(p, st.Size()-1) }},
		{"longer", func(p string) error {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write(make([]byte, 64))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, base)
			if err := tt.damage(record(dir)); err != nil {
				t.Fatal(err)
			}
			if got := openAndClose(t, dir, nil); !slices.Equal(got, ids) {
				t.Errorf("open with a damaged record verified %v, want every table %v", got, ids)
			}
			if got := openAndClose(t, dir, nil); len(got) != 0 {
				t.Errorf("open after the record was rewritten verified %v, want none", got)
			}
		})
	}
	t.Run("deleted", func(t *testing.T) {
		dir := copyDir(t, base)
		if err := os.Remove(record(dir)); err != nil {
			t.Fatal(err)
		}
		if got := openAndClose(t, dir, nil); !slices.Equal(got, ids) {
			t.Errorf("open without a record verified %v, want every table %v", got, ids)
		}
	})
}

func TestRecordFollowsCompactions(t *testing.T) {
	dir := t.TempDir()
	for batch := range 3 {
		writeTable(t, dir, batch)
	}
	before := tableIDs(t, dir)
	// One table on level 0 is enough for a compaction: the three tables
	// are merged into new ones on a lower level while the database runs.
	db, v, err := openCounted(t, dir, func(o *store.Options) {
		o.NumLevelZeroTables = 1
		o.TableCheckInterval = 20 * time.Millisecond
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.get(); !slices.Equal(got, before[2:]) {
		t.Errorf("open verified %v, want the table not yet recorded %v", got, before[2:])
	}
	deadline := time.Now().Add(30 * time.Second)
	var live, recorded []uint64
	for {
		live = tableIDs(t, dir)
		recorded, err = store.RecordedTables(dir)
		if err != nil {
			t.Fatal(err)
		}
		removed := slices.ContainsFunc(before, func(id uint64) bool { return !slices.Contains(live, id) })
		added := slices.ContainsFunc(live, func(id uint64) bool { return !slices.Contains(before, id) })
		if removed && added && slices.Equal(recorded, live) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: tables %v, recorded %v (before the compaction %v)", live, recorded, before)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Everything the running database wrote and recorded is not read
	// again; only what a compaction still running at Close wrote is.
	recorded, err = store.RecordedTables(dir)
	if err != nil {
		t.Fatal(err)
	}
	var want []uint64
	for _, id := range tableIDs(t, dir) {
		if !slices.Contains(recorded, id) {
			want = append(want, id)
		}
	}
	if got := openAndClose(t, dir, nil); !slices.Equal(got, want) {
		t.Errorf("open after the compaction verified %v, want %v (recorded %v)", got, want, recorded)
	}
	// That open recorded what it verified and dropped what is gone.
	if got, err := store.RecordedTables(dir); err != nil || !slices.Equal(got, tableIDs(t, dir)) {
		t.Errorf("recorded after the open: %v, %v; want the tables on disk %v", got, err, tableIDs(t, dir))
	}
	db, _, err = openCounted(t, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for batch := range 3 {
		for _, i := range []int{0, keysPerTable / 2, keysPerTable - 1} {
			if got, err := db.Get(tableKey(batch, i)); err != nil || !bytes.Equal(got, tableValue(batch, i)) {
				t.Errorf("batch %d key %d after the compaction: %x, %v", batch, i, got, err)
			}
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Damage in a block that no start reads is found by the running
// database's re-verification, which logs it and drops the table from the
// record so that the next start verifies it in full and refuses it.
func TestReverifyFindsLaterDamage(t *testing.T) {
	dir := t.TempDir()
	writeTable(t, dir, 0)
	ids := tableIDs(t, dir)
	if got := openAndClose(t, dir, nil); !slices.Equal(got, ids) {
		t.Fatalf("recording open verified %v, want %v", got, ids)
	}
	path := store.TableFile(dir, ids[0])
	if err := flip(path, layoutOf(t, path).tail/2); err != nil {
		t.Fatal(err)
	}
	opts := store.DefaultOptions(dir)
	opts.GCInterval = 0
	opts.TableCheckInterval = 20 * time.Millisecond
	opts.TableReverifyAfter = time.Nanosecond
	var logs lockedBuffer
	db, err := store.Open(opts, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("Open: %v; want the damage outside the tail left to the re-verification", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		recorded, err := store.RecordedTables(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(recorded, ids[0]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s the damaged table %d is still recorded as verified (%v)", ids[0], recorded)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=ERROR msg=\"table damaged") || !strings.Contains(logs.String(), path) {
		t.Errorf("logs lack an error naming the damaged table %s:\n%s", path, logs.String())
	}
	_, _, err = openCounted(t, dir, nil)
	if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Errorf("Open after the re-verification: %v; want store.ErrCorrupt naming %s", err, path)
	}
}
