package store_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

func TestMinReserve(t *testing.T) {
	storetest.RequireBadger(t, "the disk-space watch")
	opts := store.DefaultOptions("x")
	for _, c := range []struct {
		lsm, want int64
	}{
		{0, 36 << 20},
		{-1, 36 << 20},
		{100 << 20, 136 << 20},
	} {
		if got := store.MinReserve(opts, c.lsm); got != c.want {
			t.Errorf("MinReserve(defaults, lsm %d): got %d, want %d", c.lsm, got, c.want)
		}
	}
}

// TestSpaceRefusesWritesAndResumes drives the monitor with a settable free
// space: below the reserve Update fails with ErrDiskLow and writes nothing,
// reads and reserved updates go on, and writes resume by themselves once
// space returns past the hysteresis.
func TestSpaceRefusesWritesAndResumes(t *testing.T) {
	storetest.RequireBadger(t, "the disk-space watch")
	dir := t.TempDir()
	db := storetest.OpenDir(t, dir)
	defer db.Close()
	const reserve = 100 << 20
	var free atomic.Int64
	free.Store(1 << 30)
	var mu sync.Mutex
	var changes []bool
	opts := store.SpaceOptions{Reserve: reserve, Interval: 10 * time.Millisecond, OnChange: func(low bool) {
		mu.Lock()
		changes = append(changes, low)
		mu.Unlock()
	}}
	opts.Statfs = func() (int64, error) { return free.Load(), nil }
	sp, err := store.WatchSpace(db, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	set := func(k string) error {
		return db.Update(func(tx *store.Txn) error { return tx.Set([]byte(k), []byte("v")) })
	}
	if err := set("before"); err != nil {
		t.Fatalf("write with space: %v", err)
	}
	// waitFor polls until the write's outcome is want; the check before
	// each write measures again after Interval/8.
	waitFor := func(key string, want error) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := set(key)
			if errors.Is(err, want) || err == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("write %s: got %v, want %v", key, err, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	free.Store(reserve - 1)
	waitFor("low", store.ErrDiskLow)
	if st, ok := db.SpaceStatus(); !ok || !st.Low || st.FreeBytes != reserve-1 || st.ReserveBytes != reserve {
		t.Errorf("SpaceStatus while low: got %+v, %v; want low, free %d, reserve %d", st, ok, reserve-1, reserve)
	}
	if err := set("refused"); !errors.Is(err, store.ErrDiskLow) {
		t.Errorf("write while low: got %v, want ErrDiskLow", err)
	}
	if _, err := db.Get([]byte("refused")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused write: Get got %v, want ErrNotFound", err)
	}
	if v, err := db.Get([]byte("before")); err != nil || string(v) != "v" {
		t.Errorf("read while low: got %q, %v; want \"v\"", v, err)
	}
	if err := db.UpdateReserved(func(tx *store.Txn) error { return tx.Set([]byte("reserved"), nil) }); err != nil {
		t.Errorf("UpdateReserved while low: %v", err)
	}
	// Just above the reserve is not enough: writes wait for the hysteresis.
	free.Store(reserve + 1)
	time.Sleep(50 * time.Millisecond)
	if err := set("edge"); !errors.Is(err, store.ErrDiskLow) {
		t.Errorf("write just above the reserve after low: got %v, want ErrDiskLow", err)
	}
	free.Store(2 * reserve)
	waitFor("after", nil)
	mu.Lock()
	got := append([]bool(nil), changes...)
	mu.Unlock()
	if len(got) != 2 || !got[0] || got[1] {
		t.Errorf("OnChange calls: got %v, want [true false]", got)
	}
}

// TestSpaceReserveIsRaisedToTheMinimum checks that a reserve below what the
// store needs is not used as given.
func TestSpaceReserveIsRaisedToTheMinimum(t *testing.T) {
	storetest.RequireBadger(t, "the disk-space watch")
	db := storetest.Open(t)
	defer db.Close()
	opts := store.SpaceOptions{Reserve: 1 << 20, Interval: time.Second}
	opts.Statfs = func() (int64, error) { return 20 << 20, nil }
	sp, err := store.WatchSpace(db, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	st := sp.Status()
	if min := store.MinReserve(store.DefaultOptions(""), 0); st.ReserveBytes < min || !st.Low {
		t.Errorf("status: got %+v, want a reserve of at least %d and low", st, min)
	}
	if err := db.Update(func(tx *store.Txn) error { return nil }); !errors.Is(err, store.ErrDiskLow) {
		t.Errorf("Update: got %v, want ErrDiskLow", err)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *store.Txn) error { return nil }); err != nil {
		t.Errorf("Update after the monitor closed: got %v, want nil", err)
	}
}

// BenchmarkCheckSpace measures the check made before every write and every
// payment decision.
func BenchmarkCheckSpace(b *testing.B) {
	db := storetest.Open(b)
	sp, err := store.WatchSpace(db, store.DefaultSpaceOptions(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	b.ReportAllocs()
	for b.Loop() {
		if err := db.CheckSpace(); err != nil {
			b.Fatal(err)
		}
	}
}
