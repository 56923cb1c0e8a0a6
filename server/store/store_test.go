package store_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

func TestReopenKeepsCommittedData(t *testing.T) {
	dir := t.TempDir()
	db := storetest.OpenDir(t, dir)
	err := db.Update(func(tx *store.Txn) error {
		for i := range 100 {
			if err := tx.Set(store.AppendUint64([]byte("k/"), uint64(i)), fmt.Appendf(nil, "v%d", i)); err != nil {
				return err
			}
		}
		return tx.Delete(store.AppendUint64([]byte("k/"), 7))
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	db = storetest.OpenDir(t, dir)
	defer db.Close()
	got, err := db.Get(store.AppendUint64([]byte("k/"), 42))
	if err != nil || string(got) != "v42" {
		t.Fatalf("Get(42) = %q, %v; want v42", got, err)
	}
	if _, err := db.Get(store.AppendUint64([]byte("k/"), 7)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(deleted) err = %v, want ErrNotFound", err)
	}
	var n int
	var last []byte
	err = db.View(func(tx *store.Txn) error {
		return tx.Iterate([]byte("k/"), nil, func(k, _ []byte) error {
			if last != nil && bytes.Compare(last, k) >= 0 {
				return fmt.Errorf("keys out of order: %x then %x", last, k)
			}
			last = bytes.Clone(k)
			n++
			return nil
		})
	})
	if err != nil || n != 99 {
		t.Fatalf("Iterate: n = %d, err = %v; want 99 keys in order", n, err)
	}
}

func TestFailedUpdateWritesNothing(t *testing.T) {
	db := storetest.Open(t)
	defer db.Close()
	boom := errors.New("boom")
	err := db.Update(func(tx *store.Txn) error {
		if err := tx.Set([]byte("a"), []byte("1")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update err = %v, want boom", err)
	}
	if _, err := db.Get([]byte("a")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after failed update: err = %v, want ErrNotFound", err)
	}
}

func TestIterateReverseAndStop(t *testing.T) {
	db := storetest.Open(t)
	defer db.Close()
	err := db.Update(func(tx *store.Txn) error {
		for i := range 10 {
			if err := tx.Set(store.AppendUint64([]byte("r/"), uint64(i)), nil); err != nil {
				return err
			}
		}
		return tx.Set([]byte("s/other"), nil) // must not be visited
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	err = db.View(func(tx *store.Txn) error {
		start := store.AppendUint64([]byte("r/"), 6)
		return tx.IterateReverse([]byte("r/"), start, func(k, _ []byte) error {
			got = append(got, uint64(k[len(k)-1]))
			if len(got) == 3 {
				return store.ErrStop
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[6 5 4]" {
		t.Fatalf("reverse from 6, three keys: got %v, want [6 5 4]", got)
	}
}

func TestBackupRestore(t *testing.T) {
	storetest.RequireBadger(t, "backups")
	src := storetest.Open(t)
	if err := src.Update(func(tx *store.Txn) error { return tx.Set([]byte("x"), []byte("y")) }); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := src.Backup(t.Context(), &buf); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	src.Close()
	dst := storetest.Open(t)
	defer dst.Close()
	if err := dst.Restore(&buf); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if v, err := dst.Get([]byte("x")); err != nil || string(v) != "y" {
		t.Fatalf("restored Get = %q, %v; want y", v, err)
	}
}

func TestOptionsValidate(t *testing.T) {
	bad := []func(*store.Options){
		func(o *store.Options) { o.Dir = "" },
		func(o *store.Options) { o.MemTableSize = 10 },
		func(o *store.Options) { o.GCDiscardRatio = 1 },
		func(o *store.Options) { o.ValueLogFileSize = 4 << 30 },
		func(o *store.Options) { o.NumLevelZeroTables = 0 },
		func(o *store.Options) { o.TableCheckInterval = -time.Second },
		func(o *store.Options) { o.TableReverifyAfter = -time.Second },
	}
	for i, mut := range bad {
		o := store.DefaultOptions(t.TempDir())
		mut(&o)
		if _, err := store.Open(o, nil); err == nil {
			t.Errorf("case %d: Open accepted invalid options", i)
		}
	}
}

func TestSetWithTTL(t *testing.T) {
	dir := t.TempDir()
	db := storetest.OpenDir(t, dir)
	start := time.Now()
	err := db.Update(func(tx *store.Txn) error {
		if err := tx.SetWithTTL([]byte("t/short"), []byte("s"), time.Second); err != nil {
			return err
		}
		if err := tx.SetWithTTL([]byte("t/long"), []byte("l"), time.Hour); err != nil {
			return err
		}
		if err := tx.Set([]byte("t/forever"), []byte("f")); err != nil {
			return err
		}
		if err := tx.SetWithTTL([]byte("t/bad"), nil, 0); err == nil {
			return errors.New("SetWithTTL accepted a zero ttl")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The expiry survives a restart.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = storetest.OpenDir(t, dir)
	defer db.Close()
	err = db.View(func(tx *store.Txn) error {
		long, err := tx.Expiry([]byte("t/long"))
		if err != nil {
			return err
		}
		if lo, hi := start.Add(time.Hour-time.Second), time.Now().Add(time.Hour); long.Before(lo) || long.After(hi) {
			t.Errorf("expiry of t/long = %v, want within [%v, %v]", long, lo, hi)
		}
		forever, err := tx.Expiry([]byte("t/forever"))
		if err != nil || !forever.IsZero() {
			t.Errorf("expiry of t/forever = %v, %v; want zero", forever, err)
		}
		if _, err := tx.Expiry([]byte("t/missing")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("expiry of a missing key: %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Past its expiry (whole seconds, rounded down) the short key is gone
	// for reads and iteration alike.
	time.Sleep(time.Until(start.Add(time.Second).Truncate(time.Second).Add(time.Second + 50*time.Millisecond)))
	if _, err := db.Get([]byte("t/short")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get expired key: %v, want ErrNotFound", err)
	}
	var seen []string
	err = db.View(func(tx *store.Txn) error {
		return tx.IterateExpiry([]byte("t/"), func(k, _ []byte, exp time.Time) error {
			seen = append(seen, fmt.Sprintf("%s:%t", k, exp.IsZero()))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(seen), "[t/forever:true t/long:false]"; got != want {
		t.Errorf("IterateExpiry saw %s, want %s", got, want)
	}
}

// Badger's chatter reaches the log at debug level, one clean line each,
// and only when debug is enabled.
func TestBadgerLogging(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		var buf bytes.Buffer
		logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level}))
		db, err := store.Open(store.DefaultOptions(t.TempDir()), logger)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *store.Txn) error { return tx.Set([]byte("k"), []byte("v")) }); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		var badgerLines int
		for line := range strings.Lines(buf.String()) {
			var rec struct{ Level, Msg, Component string }
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
			if rec.Component != "badger" {
				continue
			}
			badgerLines++
			if rec.Level == "DEBUG" && level != slog.LevelDebug {
				t.Errorf("debug line logged at level %v: %q", level, line)
			}
			if strings.HasSuffix(rec.Msg, "\n") {
				t.Errorf("message keeps its newline: %q", rec.Msg)
			}
		}
		if level == slog.LevelDebug && badgerLines == 0 {
			t.Errorf("no badger lines at debug level:\n%s", buf.String())
		}
	}
}

// IterateReverse with no start key used to seek to the prefix followed by
// 16 0xFF bytes, so it never visited keys whose suffix begins with 16 or
// more 0xFF bytes.
func TestIterateReverseVisitsHighKeys(t *testing.T) {
	dir := t.TempDir()
	db := storetest.OpenDir(t, dir)
	ff := func(n int) string { return strings.Repeat("\xff", n) }
	keys := []string{
		"r/\x00", "r/\x01", "r/" + ff(16), "r/" + ff(17), "r/" + ff(17) + "x",
		"r0",     // the successor of "r/": not visited
		"q", "s", // around it
		"\xff", "\xff\xff", "\xff" + ff(20), // under an all-0xFF prefix
	}
	err := db.Update(func(tx *store.Txn) error {
		for _, k := range keys {
			if err := tx.Set([]byte(k), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(where string) {
		t.Helper()
		for _, prefix := range []string{"r/", "r", "\xff", "\xff\xff", "", "t"} {
			var want, got []string
			for _, k := range keys {
				if strings.HasPrefix(k, prefix) {
					want = append(want, k)
				}
			}
			slices.Sort(want)
			slices.Reverse(want)
			err := db.View(func(tx *store.Txn) error {
				return tx.IterateReverse([]byte(prefix), nil, func(k, _ []byte) error {
					got = append(got, string(k))
					return nil
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("IterateReverse(%q) from %s = %q, want %q", prefix, where, got, want)
			}
		}
	}
	check("the memtable")
	db.Close()
	db = storetest.OpenDir(t, dir) // the keys are now in a table
	defer db.Close()
	check("a table")
}

// Validate used to accept a zero BlockCacheSize, on which Badger panics
// (it compresses blocks), and MemTableSize between 1 MiB and about 6.7 MiB,
// on which Open fails.
func TestOptionsValidateRefusesWhatBadgerRefuses(t *testing.T) {
	bad := map[string]func(*store.Options){
		"no block cache":        func(o *store.Options) { o.BlockCacheSize = 0 },
		"4 MiB memtable":        func(o *store.Options) { o.MemTableSize = 4 << 20 },
		"memtable a byte short": func(o *store.Options) { o.MemTableSize = 6990506 },
		"negative index cache":  func(o *store.Options) { o.IndexCacheSize = -1 },
	}
	for name, mut := range bad {
		o := store.DefaultOptions(t.TempDir())
		mut(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
	}
	// The smallest memtable Validate accepts opens, on disk and in memory.
	for _, inMemory := range []bool{false, true} {
		o := store.DefaultOptions(t.TempDir())
		o.MemTableSize = 6990507
		o.IndexCacheSize = 0
		if inMemory {
			o.Dir, o.InMemory = "", true
		}
		db, err := store.Open(o, nil)
		if err != nil {
			t.Fatalf("Open with a memtable of %d bytes (in memory %t): %v", o.MemTableSize, inMemory, err)
		}
		if err := db.Update(func(tx *store.Txn) error { return tx.Set([]byte("k"), make([]byte, 512<<10)) }); err != nil {
			t.Errorf("write of a 512 KiB value (in memory %t): %v", inMemory, err)
		}
		db.Close()
	}
}
