package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// A backup taken while writes go on holds every commit acknowledged before
// it started, and each later commit either whole or not at all: a writer
// commits pairs of keys at both ends of the key space, one pair per
// transaction, in order.
func TestBackupUnderWritesIsConsistent(t *testing.T) {
	storetest.RequireBadger(t, "backups")
	src := storetest.Open(t)
	defer src.Close()
	fill(t, src, 5000)
	pair := func(i int) error {
		return src.Update(func(tx *store.Txn) error {
			if err := tx.Set(fmt.Appendf(nil, "a/%06d", i), []byte("x")); err != nil {
				return err
			}
			return tx.Set(fmt.Appendf(nil, "z/%06d", i), []byte("x"))
		})
	}
	const before = 50
	for i := range before {
		if err := pair(i); err != nil {
			t.Fatal(err)
		}
	}
	var stop atomic.Bool
	done := make(chan error, 1)
	go func() {
		for i := before; !stop.Load(); i++ {
			if err := pair(i); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var buf bytes.Buffer
	err := src.Backup(t.Context(), &buf)
	stop.Store(true)
	if werr := <-done; werr != nil {
		t.Fatal(werr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CheckBackup(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("CheckBackup of a whole backup: %v", err)
	}

	dst := storetest.Open(t)
	defer dst.Close()
	if err := dst.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, dst); n != 5000 {
		t.Errorf("restored %d prefilled keys, want 5000", n)
	}
	got := map[string]int{}
	for _, p := range []string{"a/", "z/"} {
		err := dst.View(func(tx *store.Txn) error {
			return tx.Iterate([]byte(p), nil, func(k, _ []byte) error {
				got[strings.TrimPrefix(string(k), p)]++
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < len(got); i++ {
		switch n := got[fmt.Sprintf("%06d", i)]; {
		case n != 2:
			t.Fatalf("pair %d: %d of its 2 keys restored (%d pairs restored); want whole pairs with no gaps", i, n, len(got))
		}
	}
	if len(got) < before {
		t.Errorf("restored %d pairs, want at least the %d committed before the backup", len(got), before)
	}
}

func TestCheckBackup(t *testing.T) {
	storetest.RequireBadger(t, "backups")
	src := storetest.Open(t)
	fill(t, src, 3000)
	var buf bytes.Buffer
	if err := src.Backup(t.Context(), &buf); err != nil {
		t.Fatal(err)
	}
	src.Close()
	whole := buf.Bytes()
	damaged := bytes.Clone(whole)
	damaged[len(damaged)/2] ^= 1
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"whole", whole, nil},
		{"empty", nil, store.ErrNotBackup},
		{"header only", whole[:12], store.ErrCorruptBackup},
		{"half", whole[:len(whole)/2], store.ErrCorruptBackup},
		{"one byte short", whole[:len(whole)-1], store.ErrCorruptBackup},
		{"byte appended", append(bytes.Clone(whole), 0), store.ErrCorruptBackup},
		{"damaged", damaged, store.ErrCorruptBackup},
	} {
		if err := store.CheckBackup(bytes.NewReader(tc.in)); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: CheckBackup = %v, want %v", tc.name, err, tc.want)
		}
	}
}
