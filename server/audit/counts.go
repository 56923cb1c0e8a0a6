package audit

import (
	"encoding/binary"
	"fmt"

	"github.com/posfleet/posfleet/server/store"
)

// storedCounts are the numbers of events on disk from before Open, read
// per type on first use: Open does not read the trail.
type storedCounts struct {
	// before is the first ID given out since Open.
	before uint64
	// known marks the types counted; n holds their counts.
	known [typeCount]bool
	n     [typeCount]uint64
	// mismatches counts merchant-mismatch alerts per terminal.
	mismatches map[string]uint64
}

// stored returns the number of events of type t with IDs before Open,
// counting them in the type index on first use (merchant mismatches per
// terminal too). l.mu is held.
func (l *Log) stored(t Type) (uint64, error) {
	c := &l.counted
	if c.known[t] {
		return c.n[t], nil
	}
	prefix := indexKey(prefixByType, fmt.Sprint(int32(t)), 0)
	prefix = prefix[:len(prefix)-8]
	var n uint64
	mismatches := map[string]uint64{}
	err := l.db.View(func(tx *store.Txn) error {
		return tx.IterateKeys(prefix, func(k []byte) error {
			if len(k) != len(prefix)+8 {
				return nil
			}
			id := binary.BigEndian.Uint64(k[len(prefix):])
			if id >= c.before {
				return store.ErrStop
			}
			n++
			if t != MerchantMismatch {
				return nil
			}
			v, err := tx.Get(append(append([]byte{}, prefixEvent...), k[len(prefix):]...))
			if err != nil {
				return err
			}
			var e Event
			if err := decode(v, &e); err != nil {
				return fmt.Errorf("audit: decode event %d: %w", id, err)
			}
			if e.TerminalID != "" {
				mismatches[e.TerminalID]++
			}
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	c.known[t], c.n[t] = true, n
	if t == MerchantMismatch {
		c.mismatches = mismatches
	}
	return n, nil
}
