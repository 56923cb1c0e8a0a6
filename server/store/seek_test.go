package store_test

import (
	"testing"

	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// First and Last find the one key nearest a start within a prefix, and
// nothing outside it.
func TestFirstAndLast(t *testing.T) {
	db := storetest.Open(t)
	err := db.Update(func(tx *store.Txn) error {
		for _, k := range []string{"a", "a/1", "a/3", "a/5", "b/1"} {
			if err := tx.Set([]byte(k), []byte("v"+k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		last          bool
		prefix, start string
		nilStart      bool
		want          string // "" for none
	}{
		{false, "a/", "", true, "a/1"},
		{false, "a/", "a/3", false, "a/3"},
		{false, "a/", "a/4", false, "a/5"},
		{false, "a/", "a/6", false, ""},
		{false, "c/", "", true, ""},
		{true, "a/", "", true, "a/5"},
		{true, "a/", "a/3", false, "a/3"},
		{true, "a/", "a/2", false, "a/1"},
		{true, "a/", "a/0", false, ""},
		{true, "b/", "", true, "b/1"},
		{true, "c/", "", true, ""},
	}
	for _, tc := range tests {
		var start []byte
		if !tc.nilStart {
			start = []byte(tc.start)
		}
		var k, v []byte
		var ok bool
		err := db.View(func(tx *store.Txn) error {
			var err error
			if tc.last {
				k, v, ok, err = tx.Last([]byte(tc.prefix), start)
			} else {
				k, v, ok, err = tx.First([]byte(tc.prefix), start)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if ok {
			got = string(k)
			if string(v) != "v"+got {
				t.Errorf("last=%v %q from %q: value %q, want %q", tc.last, tc.prefix, tc.start, v, "v"+got)
			}
		}
		if got != tc.want {
			t.Errorf("last=%v %q from %q: got %q, want %q", tc.last, tc.prefix, tc.start, got, tc.want)
		}
	}
}

// Sparsest picks the index with the fewest keys just below a position,
// and one with fewer keys than it reads at once; keys of a longer prefix
// sharing an index's bytes do not count.
func TestSparsest(t *testing.T) {
	db := storetest.Open(t)
	err := db.Update(func(tx *store.Txn) error {
		for n := uint64(1); n <= 100; n++ {
			keys := [][]byte{store.AppendUint64([]byte("x/a/"), n), store.AppendUint64([]byte("x/a/z/"), n)}
			if n%10 == 0 {
				keys = append(keys, store.AppendUint64([]byte("x/b/"), n))
			}
			for _, k := range keys {
				if err := tx.Set(k, nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	idx := [][]byte{[]byte("x/a/"), []byte("x/b/")}
	tests := []struct {
		below      uint64
		width      int
		best, read int
	}{
		{1<<64 - 1, 4, 1, 8},   // a's 4th newest is 97, b's is 70
		{1<<64 - 1, 20, 1, 30}, // b has only 10 keys: it wins, after reading a's 20
		{95, 4, 1, 8},          // below 95: a's 4th is 91, b's 60
		{5, 8, 0, 4},           // a has only 4 keys below 5
	}
	for _, tc := range tests {
		var best, read int
		err := db.View(func(tx *store.Txn) error {
			var err error
			best, read, err = tx.Sparsest(idx, tc.below, tc.width)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if best != tc.best || read != tc.read {
			t.Errorf("below %d width %d: got index %d after %d keys, want %d after %d", tc.below, tc.width, best, read, tc.best, tc.read)
		}
	}
}
