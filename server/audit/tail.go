package audit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/posfleet/posfleet/server/store"
)

// ErrEventNotFound is returned by Get for an ID with no stored event.
var ErrEventNotFound = errors.New("audit: event not found")

// tailState tracks event IDs that were handed out but whose events are not
// yet settled (on disk, or known never to be). Events are written out of ID
// order (a batch of recorded alerts lands after a later committed change),
// so a reader following the log in ID order may only read below the lowest
// unsettled ID: everything there is final. Guarded by Log.mu.
type tailState struct {
	// pending holds the unsettled IDs.
	pending map[uint64]struct{}
	// settled is closed, and replaced, whenever IDs settle.
	settled chan struct{}
	// low is the lowest pending ID when lowValid. IDs are handed out in
	// increasing order, so only settling the lowest invalidates it.
	low      uint64
	lowValid bool
}

// hold marks id, just handed out, as pending.
func (t *tailState) hold(id uint64) {
	if len(t.pending) == 0 {
		t.low, t.lowValid = id, true
	}
	t.pending[id] = struct{}{}
}

func newTailState() tailState {
	return tailState{pending: map[uint64]struct{}{}, settled: make(chan struct{})}
}

// Abandon settles prepared events whose transaction failed: readers
// following the log stop waiting for them. A caller of Prepare calls either
// Committed or Abandon.
func (l *Log) Abandon(evs []Event) { l.settle(evs) }

// settle marks evs as final and wakes the readers waiting in Settled.
func (l *Log) settle(evs []Event) {
	if len(evs) == 0 {
		return
	}
	l.mu.Lock()
	l.settleLocked(evs)
	l.mu.Unlock()
}

func (l *Log) settleLocked(evs []Event) {
	for i := range evs {
		delete(l.tail.pending, evs[i].ID)
		if evs[i].ID == l.tail.low {
			l.tail.lowValid = false
		}
	}
	close(l.tail.settled)
	l.tail.settled = make(chan struct{})
}

// Watermark returns the lowest event ID that may still appear: every event
// with a lower ID is on disk or never will be.
func (l *Log) Watermark() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := &l.tail
	if len(t.pending) == 0 {
		return l.nextID
	}
	if !t.lowValid {
		t.low = l.nextID
		for id := range t.pending {
			t.low = min(t.low, id)
		}
		t.lowValid = true
	}
	return t.low
}

// Settled returns a channel that is closed the next time events settle
// (are written, committed or abandoned), for readers waiting for new events.
func (l *Log) Settled() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tail.settled
}

// Get returns the event with the given ID.
func (l *Log) Get(id uint64) (Event, error) {
	var e Event
	err := l.db.View(func(tx *store.Txn) error {
		v, err := tx.Get(store.AppendUint64(append([]byte{}, prefixEvent...), id))
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %d", ErrEventNotFound, id)
		}
		if err != nil {
			return err
		}
		return decode(v, &e)
	})
	e.ID = id
	return e, err
}

// Tail returns, in ID order, up to limit settled events of the given types
// with IDs above after, and the ID up to which the log has been read: pass
// it as after to the next call. Events are final below the watermark only,
// so Tail never returns an event with a lower ID than one it returned
// before, and never skips one that appears later.
func (l *Log) Tail(ctx context.Context, after uint64, types []Type, limit int) ([]Event, uint64, error) {
	if limit <= 0 {
		limit = 100
	}
	below := l.Watermark()
	if below == 0 || after >= below-1 {
		return nil, after, nil
	}
	var ids []uint64
	err := l.db.View(func(tx *store.Txn) error {
		for _, t := range types {
			idx := append(append(append([]byte{}, prefixByType...), fmt.Sprint(int32(t))...), '/')
			n := 0
			err := tx.Iterate(idx, store.AppendUint64(slices.Clone(idx), after+1), func(k, _ []byte) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				id := binary.BigEndian.Uint64(k[len(idx):])
				if id >= below || n == limit {
					return store.ErrStop
				}
				ids = append(ids, id)
				n++
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, after, err
	}
	slices.Sort(ids)
	upto := below - 1
	if len(ids) > limit {
		ids = ids[:limit]
	}
	if len(ids) == limit {
		upto = ids[limit-1]
	}
	out := make([]Event, 0, len(ids))
	for _, id := range ids {
		e, err := l.Get(id)
		if err != nil {
			return nil, after, err
		}
		out = append(out, e)
	}
	return out, upto, nil
}
