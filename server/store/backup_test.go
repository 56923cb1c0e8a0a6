package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// fill writes n keys "k/%06d" with 100-byte values, in transactions of 1000,
// and returns the value.
func fill(t *testing.T, db *store.DB, n int) []byte {
	t.Helper()
	val := bytes.Repeat([]byte("v"), 100)
	for b := 0; b < n; b += 1000 {
		err := db.Update(func(tx *store.Txn) error {
			for i := b; i < min(b+1000, n); i++ {
				if err := tx.Set(fmt.Appendf(nil, "k/%06d", i), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return val
}

// countKeys returns how many keys start with "k/".
func countKeys(t *testing.T, db *store.DB) int {
	t.Helper()
	var n int
	err := db.View(func(tx *store.Txn) error {
		return tx.Iterate([]byte("k/"), nil, func(_, _ []byte) error { n++; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// restoreFresh restores r into a new database and returns the error, or
// else the number of keys restored. A panic is returned as an error. After a
// failed restore the database is only closed, as Restore's doc says.
func restoreFresh(t *testing.T, r io.Reader) (n int, err error) {
	t.Helper()
	db := storetest.Open(t)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
		if cerr := db.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := db.Restore(r); err != nil {
		return 0, err
	}
	return countKeys(t, db), nil
}

// writeRecorder keeps each Write separately.
type writeRecorder struct{ writes [][]byte }

func (w *writeRecorder) Write(b []byte) (int, error) {
	w.writes = append(w.writes, bytes.Clone(b))
	return len(b), nil
}

// Restoring something that is not a backup used to panic inside Badger's
// Load, which read the first 8 bytes as a record length and allocated that
// much; an empty file restored "successfully".
func TestRestoreRejectsNonBackup(t *testing.T) {
	storetest.RequireBadger(t, "backups")
	for _, in := range []string{"hello world, this is not a backup\n", "", "x"} {
		_, err := restoreFresh(t, strings.NewReader(in))
		if !errors.Is(err, store.ErrNotBackup) {
			t.Errorf("restore of %q: %v, want ErrNotBackup", in, err)
		}
	}
}

// A backup cut short, as a killed backup leaves it, used to restore without
// error whenever the cut fell between records, with the rest of the data
// silently missing.
func TestRestoreRejectsCutShortBackup(t *testing.T) {
	storetest.RequireBadger(t, "backups")
	src := storetest.Open(t)
	fill(t, src, 20000)
	var rec writeRecorder
	if err := src.Backup(t.Context(), &rec); err != nil {
		t.Fatal(err)
	}
	src.Close()
	w := rec.writes
	if len(w) < 4 {
		t.Fatalf("backup in %d writes; want several", len(w))
	}
	whole := bytes.Join(w, nil)
	var cuts [][]byte // after some writes, and one byte short of the whole
	for k := 0; k < len(w); k += max(1, len(w)/16) {
		cuts = append(cuts, bytes.Join(w[:k], nil))
	}
	cuts = append(cuts, whole[:len(whole)-1])
	for _, cut := range cuts {
		n, err := restoreFresh(t, bytes.NewReader(cut))
		if !errors.Is(err, store.ErrCorruptBackup) && !errors.Is(err, store.ErrNotBackup) {
			t.Errorf("backup cut to %d of %d bytes: err %v, %d keys restored; want ErrCorruptBackup", len(cut), len(whole), err, n)
		}
	}
	n, err := restoreFresh(t, bytes.NewReader(whole))
	if err != nil || n != 20000 {
		t.Fatalf("whole backup: err %v, %d keys; want 20000", err, n)
	}
}

// A backup damaged in the middle (one byte of a value changed) used to
// restore without error, the damage included.
func TestRestoreRejectsDamagedBackup(t *testing.T) {
	storetest.RequireBadger(t, "backups")
	src := storetest.Open(t)
	fill(t, src, 2000)
	var buf bytes.Buffer
	if err := src.Backup(t.Context(), &buf); err != nil {
		t.Fatal(err)
	}
	src.Close()
	b := buf.Bytes()
	// The payload is compressed: one bit in its middle stands for a
	// value's.
	i := len(b) / 2
	b[i] ^= 1
	if _, err := restoreFresh(t, bytes.NewReader(b)); !errors.Is(err, store.ErrCorruptBackup) {
		t.Fatalf("restore of a damaged backup: %v, want ErrCorruptBackup", err)
	}
	b[i] ^= 1
	b = append(b, 0)
	if _, err := restoreFresh(t, bytes.NewReader(b)); !errors.Is(err, store.ErrCorruptBackup) {
		t.Fatalf("restore of a backup with a byte appended: %v, want ErrCorruptBackup", err)
	}
}

// A cancelled backup stops and writes no trailer, so it cannot be restored.
func TestBackupCancelled(t *testing.T) {
	storetest.RequireBadger(t, "backups")
	src := storetest.Open(t)
	defer src.Close()
	fill(t, src, 1000)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var buf bytes.Buffer
	if err := src.Backup(ctx, &buf); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled backup: %v, want context.Canceled", err)
	}
	if _, err := restoreFresh(t, &buf); !errors.Is(err, store.ErrCorruptBackup) {
		t.Fatalf("restore of a cancelled backup: %v, want ErrCorruptBackup", err)
	}
}
