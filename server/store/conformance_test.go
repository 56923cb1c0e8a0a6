package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/posfleet/posfleet/internal/pgtest"
	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// engine opens a new, empty database on one backend; commitFault is the
// backend's CommitFault hook (nil: none).
type engine struct {
	name string
	open func(t *testing.T, commitFault func() error) *store.DB
}

// engines are the backends every conformance test runs on.
var engines = []engine{
	{"badger", func(t *testing.T, fault func() error) *store.DB {
		opts := store.DefaultOptions(t.TempDir())
		opts.CommitFault = fault
		return storetest.OpenWith(t, opts)
	}},
	{"postgres", func(t *testing.T, fault func() error) *store.DB {
		opts := store.DefaultPostgresOptions(pgtest.NewDatabase(t))
		opts.CommitFault = fault
		opts.MaxConns = 4
		db, err := store.OpenPostgres(t.Context(), opts, nil)
		if err != nil {
			t.Fatalf("OpenPostgres: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}},
}

// forEachEngine runs test on every backend, in parallel.
func forEachEngine(t *testing.T, test func(t *testing.T, open func(fault func() error) *store.DB)) {
	t.Helper()
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			test(t, func(fault func() error) *store.DB { return e.open(t, fault) })
		})
	}
}

func set(t *testing.T, db *store.DB, kv ...string) {
	t.Helper()
	err := db.Update(func(tx *store.Txn) error {
		for i := 0; i < len(kv); i += 2 {
			if err := tx.Set([]byte(kv[i]), []byte(kv[i+1])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// visit collects the keys an iteration visits, stopping after stopAfter
// keys when it is positive.
func visit(t *testing.T, db *store.DB, iter func(tx *store.Txn, fn func(k, v []byte) error) error, stopAfter int) []string {
	t.Helper()
	var got []string
	err := db.View(func(tx *store.Txn) error {
		return iter(tx, func(k, v []byte) error {
			got = append(got, string(k))
			if stopAfter > 0 && len(got) == stopAfter {
				return store.ErrStop
			}
			return nil
		})
	})
	if err != nil {
		t.Fatalf("iterate: %v", err)
	}
	return got
}

func TestConformanceGetSetDelete(t *testing.T) {
	forEachEngine(t, func(t *testing.T, open func(func() error) *store.DB) {
		db := open(nil)
		set(t, db, "a", "1", "b", "", "c", "3")
		if err := db.Update(func(tx *store.Txn) error { return tx.Delete([]byte("c")) }); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			key, want string
			err       error
		}{{"a", "1", nil}, {"b", "", nil}, {"c", "", store.ErrNotFound}, {"zz", "", store.ErrNotFound}} {
			got, err := db.Get([]byte(c.key))
			if !errors.Is(err, c.err) || string(got) != c.want {
				t.Errorf("Get(%q) = %q, %v; want %q, %v", c.key, got, err, c.want, c.err)
			}
			if c.err == nil && got == nil {
				t.Errorf("Get(%q) = nil, want an empty, non-nil value", c.key)
			}
		}
		// Get returns a copy.
		v, _ := db.Get([]byte("a"))
		v[0] = 'x'
		if again, _ := db.Get([]byte("a")); string(again) != "1" {
			t.Errorf("after changing Get's result: Get(a) = %q, want 1", again)
		}
		if err := db.View(func(tx *store.Txn) error { return tx.Set([]byte("x"), []byte("y")) }); err == nil {
			t.Error("Set in View: got nil error, want a refusal")
		}
	})
}

func TestConformanceIterate(t *testing.T) {
	keys := []string{"a", "p/", "p/1", "p/2", "p/3", "p/3/x", "p0", "q", "\xff", "\xff\x00", "\xff\xff", "\xff\xff\xff"}
	type iter = func(tx *store.Txn, fn func(k, v []byte) error) error
	fwd := func(prefix, start string, hasStart bool) iter {
		return func(tx *store.Txn, fn func(k, v []byte) error) error {
			var s []byte
			if hasStart {
				s = []byte(start)
			}
			return tx.Iterate([]byte(prefix), s, fn)
		}
	}
	rev := func(prefix, start string, hasStart bool) iter {
		return func(tx *store.Txn, fn func(k, v []byte) error) error {
			var s []byte
			if hasStart {
				s = []byte(start)
			}
			return tx.IterateReverse([]byte(prefix), s, fn)
		}
	}
	cases := []struct {
		name      string
		it        iter
		stopAfter int
		want      []string
	}{
		{"prefix", fwd("p/", "", false), 0, []string{"p/", "p/1", "p/2", "p/3", "p/3/x"}},
		{"start inclusive", fwd("p/", "p/2", true), 0, []string{"p/2", "p/3", "p/3/x"}},
		{"start between keys", fwd("p/", "p/20", true), 0, []string{"p/3", "p/3/x"}},
		{"start past the prefix", fwd("p/", "p0", true), 0, nil},
		{"stop", fwd("p/", "", false), 2, []string{"p/", "p/1"}},
		{"empty prefix", fwd("", "", false), 0, keys},
		{"no match", fwd("r", "", false), 0, nil},
		{"0xff prefix", fwd("\xff", "", false), 0, []string{"\xff", "\xff\x00", "\xff\xff", "\xff\xff\xff"}},
		{"0xff 0xff prefix", fwd("\xff\xff", "", false), 0, []string{"\xff\xff", "\xff\xff\xff"}},
		{"0xff start", fwd("\xff", "\xff\x01", true), 0, []string{"\xff\xff", "\xff\xff\xff"}},
		{"reverse prefix", rev("p/", "", false), 0, []string{"p/3/x", "p/3", "p/2", "p/1", "p/"}},
		{"reverse start inclusive", rev("p/", "p/2", true), 0, []string{"p/2", "p/1", "p/"}},
		{"reverse start between keys", rev("p/", "p/25", true), 0, []string{"p/2", "p/1", "p/"}},
		{"reverse start before the prefix", rev("p/", "p", true), 0, nil},
		{"reverse stop", rev("p/", "", false), 1, []string{"p/3/x"}},
		{"reverse empty prefix", rev("", "", false), 0, reversed(keys)},
		{"reverse 0xff prefix", rev("\xff", "", false), 0, []string{"\xff\xff\xff", "\xff\xff", "\xff\x00", "\xff"}},
		{"reverse 0xff 0xff prefix", rev("\xff\xff", "", false), 0, []string{"\xff\xff\xff", "\xff\xff"}},
		{"reverse 0xff start", rev("\xff", "\xff\x01", true), 0, []string{"\xff\x00", "\xff"}},
		{"reverse prefix before 0xff", rev("q", "", false), 0, []string{"q"}},
	}
	forEachEngine(t, func(t *testing.T, open func(func() error) *store.DB) {
		db := open(nil)
		var kv []string
		for _, k := range keys {
			kv = append(kv, k, "v"+k)
		}
		set(t, db, kv...)
		for _, c := range cases {
			if got := visit(t, db, c.it, c.stopAfter); !slices.Equal(got, c.want) {
				t.Errorf("%s: got %q, want %q", c.name, got, c.want)
			}
		}
		// Values come with their keys, and an error from fn is returned.
		boom := errors.New("boom")
		err := db.View(func(tx *store.Txn) error {
			return tx.Iterate([]byte("p/"), nil, func(k, v []byte) error {
				if string(v) != "v"+string(k) {
					t.Errorf("value of %q = %q, want %q", k, v, "v"+string(k))
				}
				if string(k) == "p/2" {
					return boom
				}
				return nil
			})
		})
		if !errors.Is(err, boom) {
			t.Errorf("Iterate with a failing fn: got %v, want %v", err, boom)
		}
		// Keys alone.
		var got []string
		err = db.View(func(tx *store.Txn) error {
			if err := tx.IterateKeys([]byte("p/"), func(k []byte) error { got = append(got, string(k)); return nil }); err != nil {
				return err
			}
			return tx.IterateKeysFrom([]byte("p/"), []byte("p/3"), func(k []byte) error { got = append(got, string(k)); return nil })
		})
		if want := []string{"p/", "p/1", "p/2", "p/3", "p/3/x", "p/3", "p/3/x"}; err != nil || !slices.Equal(got, want) {
			t.Errorf("IterateKeys, IterateKeysFrom: got %q, %v; want %q", got, err, want)
		}
	})
}

func reversed(s []string) []string {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

// Iterations longer than one fetch (PostgreSQL reads rows in chunks) visit
// every key once, in order, from any start, and a stop at any point ends
// them.
func TestConformanceIterateMany(t *testing.T) {
	const n = 1000
	key := func(i int) []byte { return store.AppendUint64([]byte("m/"), uint64(i)) }
	forEachEngine(t, func(t *testing.T, open func(func() error) *store.DB) {
		db := open(nil)
		err := db.Update(func(tx *store.Txn) error {
			for i := range n {
				if err := tx.Set(key(i), fmt.Appendf(nil, "%d", i)); err != nil {
					return err
				}
			}
			return tx.Set([]byte("m0"), []byte("after the prefix"))
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			start, stop int // stop: number of keys visited before ErrStop, 0 for all
			reverse     bool
		}{{0, 0, false}, {0, 32, false}, {0, 33, false}, {500, 0, false}, {999, 0, false}, {0, 0, true}, {999, 289, true}, {300, 0, true}, {0, 0, true}} {
			var got []int
			err := db.View(func(tx *store.Txn) error {
				fn := func(k, v []byte) error {
					var i int
					fmt.Sscan(string(v), &i)
					if !bytes.Equal(k, key(i)) {
						return fmt.Errorf("key %x has the value of %x", k, key(i))
					}
					got = append(got, i)
					if c.stop > 0 && len(got) == c.stop {
						return store.ErrStop
					}
					return nil
				}
				if c.reverse {
					return tx.IterateReverse([]byte("m/"), key(c.start), fn)
				}
				return tx.Iterate([]byte("m/"), key(c.start), fn)
			})
			var want []int
			if c.reverse {
				for i := c.start; i >= 0; i-- {
					want = append(want, i)
				}
			} else {
				for i := c.start; i < n; i++ {
					want = append(want, i)
				}
			}
			if c.stop > 0 {
				want = want[:c.stop]
			}
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("start %d, stop %d, reverse %v: visited %d keys (%v), want %d", c.start, c.stop, c.reverse, len(got), err, len(want))
			}
		}
		// Deleting each key while visiting it, in one transaction.
		var visited int
		err = db.Update(func(tx *store.Txn) error {
			return tx.Iterate([]byte("m/"), nil, func(k, _ []byte) error {
				visited++
				return tx.Delete(bytes.Clone(k))
			})
		})
		if err != nil || visited != n {
			t.Fatalf("delete while iterating: visited %d, %v; want %d", visited, err, n)
		}
		if left := visit(t, db, func(tx *store.Txn, fn func(k, v []byte) error) error { return tx.Iterate([]byte("m"), nil, fn) }, 0); !slices.Equal(left, []string{"m0"}) {
			t.Errorf("after deleting m/: got %q, want [m0]", left)
		}
	})
}

func TestConformanceTransactions(t *testing.T) {
	forEachEngine(t, func(t *testing.T, open func(func() error) *store.DB) {
		db := open(nil)
		set(t, db, "k/1", "old", "k/2", "two")

		// Reads see the transaction's own writes, point and range.
		boom := errors.New("boom")
		err := db.Update(func(tx *store.Txn) error {
			if err := tx.Set([]byte("k/1"), []byte("new")); err != nil {
				return err
			}
			if err := tx.Set([]byte("k/3"), []byte("three")); err != nil {
				return err
			}
			if err := tx.Delete([]byte("k/2")); err != nil {
				return err
			}
			if v, err := tx.Get([]byte("k/1")); err != nil || string(v) != "new" {
				t.Errorf("own write: Get(k/1) = %q, %v; want new", v, err)
			}
			if _, err := tx.Get([]byte("k/2")); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("own delete: Get(k/2) err = %v, want ErrNotFound", err)
			}
			var got []string
			err := tx.Iterate([]byte("k/"), nil, func(k, v []byte) error {
				got = append(got, string(k)+"="+string(v))
				return nil
			})
			if want := []string{"k/1=new", "k/3=three"}; err != nil || !slices.Equal(got, want) {
				t.Errorf("own writes in Iterate: got %q, %v; want %q", got, err, want)
			}
			got = got[:0]
			err = tx.IterateReverse([]byte("k/"), nil, func(k, v []byte) error {
				got = append(got, string(k))
				return nil
			})
			if want := []string{"k/3", "k/1"}; err != nil || !slices.Equal(got, want) {
				t.Errorf("own writes in IterateReverse: got %q, %v; want %q", got, err, want)
			}
			// A write after a read is undone with the rest.
			if err := tx.Set([]byte("k/4"), []byte("four")); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Update: got %v, want %v", err, boom)
		}
		// fn's error rolled everything back.
		for k, want := range map[string]string{"k/1": "old", "k/2": "two", "k/3": "", "k/4": ""} {
			v, err := db.Get([]byte(k))
			if want == "" && !errors.Is(err, store.ErrNotFound) || want != "" && string(v) != want {
				t.Errorf("after rollback: Get(%s) = %q, %v; want %q", k, v, err, want)
			}
		}

		// A view is a snapshot: commits made while it runs are not seen.
		err = db.View(func(tx *store.Txn) error {
			if v, err := tx.Get([]byte("k/1")); err != nil || string(v) != "old" {
				t.Errorf("view: Get(k/1) = %q, %v; want old", v, err)
			}
			set(t, db, "k/1", "later", "k/0", "later")
			if v, err := tx.Get([]byte("k/1")); err != nil || string(v) != "old" {
				t.Errorf("view after a commit: Get(k/1) = %q, %v; want old", v, err)
			}
			return tx.Iterate([]byte("k/"), nil, func(k, _ []byte) error {
				if string(k) == "k/0" {
					t.Error("view after a commit: Iterate visits k/0, written after the view began")
				}
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := db.Get([]byte("k/1")); string(v) != "later" {
			t.Errorf("after the view: Get(k/1) = %q, want later", v)
		}
	})
}

// Two transactions writing what the other changed: the later commit fails
// with ErrConflict (and ErrCommit) and writes nothing.
func TestConformanceConflict(t *testing.T) {
	forEachEngine(t, func(t *testing.T, open func(func() error) *store.DB) {
		db := open(nil)
		set(t, db, "c", "0")
		err := db.Update(func(tx *store.Txn) error {
			if _, err := tx.Get([]byte("c")); err != nil {
				return err
			}
			set(t, db, "c", "other")
			if err := tx.Set([]byte("side"), []byte("x")); err != nil {
				return err
			}
			return tx.Set([]byte("c"), []byte("mine"))
		})
		if !errors.Is(err, store.ErrConflict) || !errors.Is(err, store.ErrCommit) {
			t.Fatalf("conflicting Update: got %v, want ErrConflict and ErrCommit", err)
		}
		if v, _ := db.Get([]byte("c")); string(v) != "other" {
			t.Errorf("after the conflict: Get(c) = %q, want other", v)
		}
		if _, err := db.Get([]byte("side")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after the conflict: Get(side) err = %v, want ErrNotFound", err)
		}
	})
}

func TestConformanceCommitFault(t *testing.T) {
	forEachEngine(t, func(t *testing.T, open func(func() error) *store.DB) {
		var fail bool
		fault := errors.New("fsync: input/output error")
		db := open(func() error {
			if fail {
				return fault
			}
			return nil
		})
		set(t, db, "a", "1")
		fail = true
		for _, read := range []bool{false, true} {
			err := db.Update(func(tx *store.Txn) error {
				if read {
					if _, err := tx.Get([]byte("a")); err != nil {
						return err
					}
				}
				return tx.Set([]byte("a"), []byte("2"))
			})
			if !errors.Is(err, store.ErrCommit) || !errors.Is(err, fault) {
				t.Errorf("Update (read first %v) with a commit fault: got %v, want ErrCommit wrapping the fault", read, err)
			}
		}
		fail = false
		if v, _ := db.Get([]byte("a")); string(v) != "1" {
			t.Errorf("after failed commits: Get(a) = %q, want 1", v)
		}
	})
}

func TestConformanceTTL(t *testing.T) {
	forEachEngine(t, func(t *testing.T, open func(func() error) *store.DB) {
		db := open(nil)
		before := time.Now()
		err := db.Update(func(tx *store.Txn) error {
			if err := tx.SetWithTTL([]byte("t/short"), []byte("s"), time.Second); err != nil {
				return err
			}
			if err := tx.SetWithTTL([]byte("t/long"), []byte("l"), time.Hour); err != nil {
				return err
			}
			if err := tx.SetWithTTL([]byte("t/cleared"), []byte("c"), time.Second); err != nil {
				return err
			}
			if err := tx.Set([]byte("t/cleared"), []byte("c")); err != nil {
				return err
			}
			if err := tx.Set([]byte("t/never"), []byte("n")); err != nil {
				return err
			}
			if err := tx.SetWithTTL([]byte("t/bad"), []byte("b"), 0); err == nil {
				t.Error("SetWithTTL with ttl 0: got nil error")
			}
			at, err := tx.Expiry([]byte("t/long"))
			if want := time.Unix(before.Add(time.Hour).Unix(), 0); err != nil || at.Before(want) || at.After(want.Add(2*time.Second)) {
				t.Errorf("Expiry(t/long) in its transaction = %v, %v; want about %v", at, err, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var short time.Time
		exps := map[string]time.Time{}
		err = db.View(func(tx *store.Txn) error {
			var err error
			if short, err = tx.Expiry([]byte("t/short")); err != nil {
				return err
			}
			return tx.IterateExpiry([]byte("t/"), func(k, _ []byte, at time.Time) error {
				exps[string(k)] = at
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := time.Unix(before.Add(time.Second).Unix(), 0); short.Before(want) || short.After(want.Add(2*time.Second)) || short.Nanosecond() != 0 {
			t.Errorf("Expiry(t/short) = %v, want whole seconds about %v", short, want)
		}
		if len(exps) != 4 || !exps["t/never"].IsZero() || !exps["t/cleared"].IsZero() || !exps["t/short"].Equal(short) || exps["t/long"].IsZero() {
			t.Errorf("IterateExpiry: got %v", exps)
		}
		time.Sleep(time.Until(short) + 20*time.Millisecond)
		if _, err := db.Get([]byte("t/short")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(t/short) after its expiry: err = %v, want ErrNotFound", err)
		}
		got := visit(t, db, func(tx *store.Txn, fn func(k, v []byte) error) error { return tx.Iterate([]byte("t/"), nil, fn) }, 0)
		if want := []string{"t/cleared", "t/long", "t/never"}; !slices.Equal(got, want) {
			t.Errorf("Iterate after the expiry: got %q, want %q", got, want)
		}
		err = db.View(func(tx *store.Txn) error {
			_, err := tx.Expiry([]byte("t/short"))
			return err
		})
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Expiry(t/short) after its expiry: err = %v, want ErrNotFound", err)
		}
	})
}

func TestConformanceBigValues(t *testing.T) {
	forEachEngine(t, func(t *testing.T, open func(func() error) *store.DB) {
		db := open(nil)
		big := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16) // 4 MiB
		err := db.Update(func(tx *store.Txn) error {
			for i := range 3 {
				if err := tx.Set(fmt.Appendf(nil, "big/%d", i), append([]byte{byte(i)}, big...)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var n int
		err = db.View(func(tx *store.Txn) error {
			return tx.IterateReverse([]byte("big/"), nil, func(k, v []byte) error {
				if want := 2 - n; v[0] != byte(want) || !bytes.Equal(v[1:], big) {
					return fmt.Errorf("value of %s damaged", k)
				}
				n++
				return nil
			})
		})
		if err != nil || n != 3 {
			t.Errorf("big values: visited %d, %v; want 3", n, err)
		}
	})
}

func TestConformanceClosed(t *testing.T) {
	forEachEngine(t, func(t *testing.T, open func(func() error) *store.DB) {
		db := open(nil)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		err := db.Update(func(tx *store.Txn) error { return tx.Set([]byte("a"), []byte("b")) })
		if err == nil {
			t.Error("Update after Close: got nil error")
		}
		if err := db.Writable(); !errors.Is(err, store.ErrClosed) {
			t.Errorf("Writable after Close: got %v, want ErrClosed", err)
		}
	})
}
