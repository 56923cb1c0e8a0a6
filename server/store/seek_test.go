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
