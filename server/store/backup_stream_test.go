package store_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// A backup of format 1 (Badger's stream, uncompressed), as earlier
// versions wrote them, still restores and checks.
func TestRestoreFormat1(t *testing.T) {
	storetest.RequireBadger(t, "backups")
	b, err := os.ReadFile("testdata/backup-format1.bin")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CheckBackup(bytes.NewReader(b)); err != nil {
		t.Fatalf("check of a format 1 backup: %v", err)
	}
	n, err := restoreFresh(t, bytes.NewReader(b))
	if err != nil || n != 300 {
		t.Fatalf("restore of a format 1 backup: err %v, %d keys; want 300", err, n)
	}
}

// The backup is compressed: 20,000 keys with 100-byte values take far less
// than their raw size, and restore to the same keys.
func TestBackupCompressed(t *testing.T) {
	storetest.RequireBadger(t, "backups")
	src := storetest.Open(t)
	fill(t, src, 20000)
	var buf bytes.Buffer
	if err := src.Backup(t.Context(), &buf); err != nil {
		t.Fatal(err)
	}
	src.Close()
	raw := 20000 * (len("k/000000") + 100)
	if buf.Len() > raw/4 {
		t.Errorf("backup of %d raw bytes: got %d bytes, want at most a quarter", raw, buf.Len())
	}
	if err := store.CheckBackup(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("check: %v", err)
	}
	if n, err := restoreFresh(t, bytes.NewReader(buf.Bytes())); err != nil || n != 20000 {
		t.Fatalf("restore: err %v, %d keys; want 20000", err, n)
	}
}
