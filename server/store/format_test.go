package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// A record length in a damaged backup bounds what Restore allocates: one
// past the limit is refused before Badger's Load sees it.
func TestRestoreRefusesHugeRecord(t *testing.T) {
	db, err := Open(DefaultOptions(t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	in := binary.BigEndian.AppendUint32([]byte(backupMagic), backupFormat)
	in = binary.LittleEndian.AppendUint64(in, 1<<62)
	in = append(in, make([]byte, trailerSize+100)...)
	if err := db.Restore(bytes.NewReader(in)); !errors.Is(err, ErrCorruptBackup) {
		t.Fatalf("restore of a record of 2^62 bytes: %v, want ErrCorruptBackup", err)
	}
}

// A backup of a later format is refused by name.
func TestRestoreRefusesLaterFormat(t *testing.T) {
	db, err := Open(DefaultOptions(t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	in := binary.BigEndian.AppendUint32([]byte(backupMagic), backupFormatZstd+1)
	if err := db.Restore(bytes.NewReader(in)); err == nil || !bytes.Contains([]byte(err.Error()), []byte("format 3")) {
		t.Fatalf("restore of format 3: %v, want a refusal naming it", err)
	}
}
