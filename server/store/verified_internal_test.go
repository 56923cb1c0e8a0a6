package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

func testIdentity(id uint64) tableIdentity {
	ti := tableIdentity{ID: id, Size: int64(1000 + id), TailOffset: int64(id), VerifiedAt: time.Unix(int64(1_700_000_000+id), 0)}
	for i := range ti.TailSum {
		ti.TailSum[i] = byte(id) + byte(i)
	}
	return ti
}

func TestRecordEncodingDetectsEveryByteFlip(t *testing.T) {
	tables := map[uint64]tableIdentity{}
	for id := range uint64(3) {
		tables[id+1] = testIdentity(id + 1)
	}
	b := encodeVerifiedTables(tables)
	got, err := decodeVerifiedTables(b)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range tables {
		if !got[id].VerifiedAt.Equal(want.VerifiedAt) || got[id].TailSum != want.TailSum || got[id].Size != want.Size || got[id].TailOffset != want.TailOffset {
			t.Errorf("table %d: got %+v, want %+v", id, got[id], want)
		}
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		if _, err := decodeVerifiedTables(c); err == nil {
			t.Errorf("bit flipped at byte %d of %d: decoded, want an error", i, len(b))
		}
	}
	for n := range len(b) {
		if _, err := decodeVerifiedTables(b[:n]); err == nil {
			t.Errorf("cut to %d of %d bytes: decoded, want an error", n, len(b))
		}
	}
}

func TestRecordSavesAtomically(t *testing.T) {
	dir := t.TempDir()
	vt, err := loadVerifiedTables(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Concurrent recorders (Open, the background check) each save what
	// they added; the file ends up holding everything.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				vt.put(testIdentity(uint64(g*10 + i + 1)))
				if err := vt.save(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	loaded, err := loadVerifiedTables(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(loaded.ids()); got != 80 {
		t.Errorf("record holds %d tables, want 80", got)
	}

	// A crash while writing leaves a torn temporary file beside the
	// record: it is never read, and the next save replaces it.
	tmp := filepath.Join(dir, VerifiedTablesFile+".tmp")
	if err := os.WriteFile(tmp, []byte("PFVT torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err = loadVerifiedTables(dir)
	if err != nil || len(loaded.ids()) != 80 {
		t.Fatalf("with a torn temporary file: %d tables, %v; want 80", len(loaded.ids()), err)
	}
	loaded.remove(1)
	if err := loaded.save(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file after a save: %v, want it renamed away", err)
	}
	again, err := loadVerifiedTables(dir)
	if err != nil || len(again.ids()) != 79 {
		t.Errorf("after removing one: %d tables, %v; want 79", len(again.ids()), err)
	}

	// A damaged record loads empty with an error saying so.
	if err := os.WriteFile(filepath.Join(dir, VerifiedTablesFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	damaged, err := loadVerifiedTables(dir)
	if !errors.Is(err, errRecordDamaged) || len(damaged.ids()) != 0 {
		t.Errorf("damaged record: %d tables, %v; want none and errRecordDamaged", len(damaged.ids()), err)
	}
}

// A record of a table the MANIFEST no longer lists (removed by a
// compaction the running check did not see) is dropped at open.
func TestOpenDropsRecordsOfRemovedTables(t *testing.T) {
	dir := t.TempDir()
	opts := DefaultOptions(dir)
	opts.GCInterval, opts.TableCheckInterval = 0, 0
	for range 2 { // the second open records the table the first wrote
		db, err := Open(opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *Txn) error { return tx.Set([]byte("k"), []byte("v")) }); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	vt, err := loadVerifiedTables(dir)
	if err != nil || len(vt.ids()) == 0 {
		t.Fatalf("record: %v, %v; want the first table", vt.ids(), err)
	}
	const gone = 1 << 40
	vt.put(testIdentity(gone))
	if err := vt.save(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	vt, err = loadVerifiedTables(dir)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(vt.ids(), gone) {
		t.Errorf("record after open: %v still holds table %d, which the MANIFEST does not list", vt.ids(), uint64(gone))
	}
}
