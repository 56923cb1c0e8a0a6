package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// makeDatabase creates a database in dir holding n keys "k/%06d".
func makeDatabase(t *testing.T, dir string, n int) {
	t.Helper()
	db := storetest.OpenDir(t, dir)
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
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// countKeys returns how many keys "k/..." the database in dir holds.
func countKeys(t *testing.T, dir string) int {
	t.Helper()
	db := storetest.OpenDir(t, dir)
	defer db.Close()
	var n int
	err := db.View(func(tx *store.Txn) error {
		return tx.Iterate([]byte("k/"), nil, func(_, _ []byte) error { n++; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// backupOf makes a database of n keys and returns a backup file of it.
func backupOf(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	makeDatabase(t, dir, n)
	file := filepath.Join(t.TempDir(), "backup.bin")
	out, code := runCLI(t, nil, "backup", "--data-dir", dir, "--out", file)
	if code != 0 {
		t.Fatalf("backup: exit %d: %s", code, out)
	}
	// It says what it wrote, as sha256sum would.
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("wrote %s: %d bytes, sha256 %x\n", file, len(b), sha256.Sum256(b)); out != want {
		t.Errorf("backup printed %q, want %q", out, want)
	}
	return file
}

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// A backup of a data directory that does not exist (a typo) or holds no
// database used to create an empty database there, write an empty backup
// and exit 0.
func TestBackupRefusesMissingDatabase(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "typo")
	for _, dir := range []string{missing, t.TempDir()} {
		outDir := t.TempDir()
		out, code := runCLI(t, nil, "backup", "--data-dir", dir, "--out", filepath.Join(outDir, "b.bin"))
		if code == 0 || !strings.Contains(out, "no database") {
			t.Errorf("backup of %s: exit %d, %q; want a refusal", dir, code, out)
		}
		if names := entries(t, outDir); len(names) > 0 {
			t.Errorf("refused backup left %v", names)
		}
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("backup created the missing data directory: %v", err)
	}
}

// Restoring a file that is not a backup used to panic inside Badger and
// leave files in the data directory: a retry was refused as "not empty", and
// serve started on an empty database.
func TestRestoreOfNonBackupLeavesNothing(t *testing.T) {
	in := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(in, []byte("hello world, this is not a backup\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	dir := filepath.Join(parent, "restored")
	out, code := runCLI(t, nil, "restore", "--data-dir", dir, "--in", in)
	if code == 0 || strings.Contains(out, "panic") || !strings.Contains(out, "not a posfleet backup") {
		t.Errorf("restore of a text file: exit %d, output:\n%.600s", code, out)
	}
	if names := entries(t, parent); len(names) > 0 {
		t.Errorf("failed restore left %v in %s", names, parent)
	}
	if out, code := runCLI(t, nil, "restore", "--data-dir", dir, "--in", backupOf(t, 10)); code != 0 {
		t.Fatalf("retry with a backup: exit %d: %s", code, out)
	}
	if n := countKeys(t, dir); n != 10 {
		t.Errorf("restored %d keys, want 10", n)
	}
}

// A restore that failed part way (here: of a backup cut short) used to leave
// a partial database in the data directory, on which serve then started.
func TestFailedRestoreLeavesDataDirAsItWas(t *testing.T) {
	file := backupOf(t, 5000)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.bin")
	if err := os.WriteFile(cut, b[:len(b)*2/3], 0o600); err != nil {
		t.Fatal(err)
	}
	for _, existing := range []bool{false, true} {
		parent := t.TempDir()
		dir := filepath.Join(parent, "restored")
		if existing {
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		out, code := runCLI(t, nil, "restore", "--data-dir", dir, "--in", cut)
		if code == 0 || !strings.Contains(out, "truncated or corrupt") {
			t.Errorf("restore of a cut backup: exit %d: %s", code, out)
		}
		want := "[]"
		if existing {
			want = "[restored]"
			if names := entries(t, dir); len(names) > 0 {
				t.Errorf("failed restore left %v in %s", names, dir)
			}
		}
		if got := fmt.Sprint(entries(t, parent)); got != want {
			t.Errorf("after a failed restore %s holds %s, want %s", parent, got, want)
		}
		if out, code := runCLI(t, nil, "restore", "--data-dir", dir, "--in", file); code != 0 {
			t.Fatalf("restore of the whole backup: exit %d: %s", code, out)
		}
		if n := countKeys(t, dir); n != 5000 {
			t.Errorf("restored %d keys, want 5000", n)
		}
	}
}

// Restoring into an existing empty directory used to keep its mode, so the
// database (with the server's private signing key) could be readable by
// other users.
func TestRestoreMakesDataDirPrivate(t *testing.T) {
	file := backupOf(t, 10)
	dir := filepath.Join(t.TempDir(), "restored")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if out, code := runCLI(t, nil, "restore", "--data-dir", dir, "--in", file); code != 0 {
		t.Fatalf("restore: exit %d: %s", code, out)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("restored data directory has mode %o, want 700", st.Mode().Perm())
	}
}

// A backup used to be written straight to its final name, so a killed
// backup left a prefix there that looked like a backup. The file now
// appears only once complete, and a failed write leaves nothing.
func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b.bin")
	boom := errors.New("boom")
	err := writeFileAtomic(path, func(w io.Writer) error {
		io.WriteString(w, "partial")
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists before it is complete: %v", path, err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if names := entries(t, dir); len(names) > 0 {
		t.Fatalf("failed write left %v", names)
	}
	if err := writeFileAtomic(path, func(w io.Writer) error { _, err := io.WriteString(w, "whole"); return err }); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "whole" || st.Mode().Perm() != 0o600 {
		t.Errorf("%s holds %q with mode %o, want \"whole\" and 600", path, b, st.Mode().Perm())
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Errorf("%s holds %v, want only b.bin", dir, names)
	}
}
