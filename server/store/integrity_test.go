package store_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/posfleet/posfleet/server/store"
)

// openDisk opens a database in dir with small options.
func openDisk(t testing.TB, dir string) (*store.DB, error) {
	t.Helper()
	opts := store.DefaultOptions(dir)
	opts.GCInterval = 0
	return store.Open(opts, nil)
}

func TestWatermarkSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	db, err := openDisk(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := db.Watermark().Load(); len(got) != 0 {
		t.Fatalf("new database: watermark %q, want none", got)
	}
	for _, v := range []string{"one", "two", "three"} {
		if err := db.Watermark().Store([]byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = openDisk(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := string(db.Watermark().Load()); got != "three" {
		t.Errorf("after reopen: watermark %q, want %q", got, "three")
	}
}

func TestWatermarkDamage(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(path string) error
		want    string // watermark after reopen, when it opens
		corrupt bool
	}{
		{"missing", os.Remove, "", true},
		{"truncated", func(p string) error { return os.Truncate(p, 100) }, "", true},
		{"both slots", func(p string) error { return flip(p, 20, 150) }, "", true},
		// A write torn by a crash damages only the slot being written:
		// the value before it is read.
		{"newest slot", func(p string) error { return flip(p, 150) }, "old", false},
		{"older slot", func(p string) error { return flip(p, 20) }, "new", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			db, err := openDisk(t, dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range []string{"old", "new"} {
				if err := db.Watermark().Store([]byte(v)); err != nil {
					t.Fatal(err)
				}
			}
			db.Close()
			path := filepath.Join(dir, store.WatermarkFile)
			// Slot 1 (bytes 128..255) holds "new", slot 0 "old".
			if err := tt.damage(path); err != nil {
				t.Fatal(err)
			}
			db, err = openDisk(t, dir)
			if tt.corrupt {
				if !errors.Is(err, store.ErrCorrupt) {
					t.Fatalf("open: got %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if got := string(db.Watermark().Load()); got != tt.want {
				t.Errorf("watermark %q, want %q", got, tt.want)
			}
		})
	}
}

// flip inverts the byte at each offset of the file at path.
func flip(path string, offsets ...int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, off := range offsets {
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, off); err != nil {
			return err
		}
		b[0] ^= 0xFF
		if _, err := f.WriteAt(b, off); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkWatermarkStore measures what the watermark adds to every
// payment commit: one write and fdatasync of a 128-byte slot.
func BenchmarkWatermarkStore(b *testing.B) {
	db, err := openDisk(b, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	v := make([]byte, 48)
	b.ReportAllocs()
	for b.Loop() {
		if err := db.Watermark().Store(v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSyncedUpdate is the commit the watermark follows: one synced
// Badger transaction of one small key, for comparison.
func BenchmarkSyncedUpdate(b *testing.B) {
	db, err := openDisk(b, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	v := make([]byte, 48)
	b.ReportAllocs()
	for b.Loop() {
		if err := db.Update(func(tx *store.Txn) error { return tx.Set([]byte("k"), v) }); err != nil {
			b.Fatal(err)
		}
	}
}
