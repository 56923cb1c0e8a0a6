package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/store"
)

// Copy moves every key, value and expiry of a Badger database into an
// empty database of either backend, checks the result, and refuses a
// target that is not empty.
func TestCopy(t *testing.T) {
	forEachEngine(t, func(t *testing.T, open func(func() error) *store.DB) {
		src := engines[0].open(t, nil) // Badger
		err := src.Update(func(tx *store.Txn) error {
			for i := range 2500 { // more than one batch
				if err := tx.Set(store.AppendUint64([]byte("pay/tx/T1/"), uint64(i)), fmt.Appendf(nil, "payment %d", i)); err != nil {
					return err
				}
			}
			for _, k := range []string{"\xff", "\xff\xff", "m/", "empty"} {
				if err := tx.Set([]byte(k), nil); err != nil {
					return err
				}
			}
			return tx.SetWithTTL([]byte("wh/dl/x"), []byte("expiring"), time.Hour)
		})
		if err != nil {
			t.Fatal(err)
		}
		dst := open(nil)
		got, err := store.Copy(t.Context(), dst, src)
		if err != nil {
			t.Fatalf("Copy: %v", err)
		}
		if got.Keys != 2505 {
			t.Errorf("Copy copied %d keys, want 2505", got.Keys)
		}
		want, err := store.DigestOf(t.Context(), src)
		if err != nil || got != want {
			t.Errorf("Copy's digest %+v, source's %+v (%v)", got, want, err)
		}
		if back, err := store.DigestOf(t.Context(), dst); err != nil || back != want {
			t.Errorf("target's digest %+v, want %+v (%v)", back, want, err)
		}
		var srcExp, dstExp time.Time
		src.View(func(tx *store.Txn) error { srcExp, _ = tx.Expiry([]byte("wh/dl/x")); return nil })
		dst.View(func(tx *store.Txn) error { dstExp, _ = tx.Expiry([]byte("wh/dl/x")); return nil })
		if d := dstExp.Sub(srcExp); srcExp.IsZero() || d < 0 || d > 2*time.Second {
			t.Errorf("expiry in the target %v, in the source %v; want the same within a second", dstExp, srcExp)
		}
		if _, err := store.Copy(t.Context(), dst, src); !errors.Is(err, store.ErrTargetNotEmpty) {
			t.Errorf("Copy into a non-empty target: got %v, want ErrTargetNotEmpty", err)
		}
	})
}
