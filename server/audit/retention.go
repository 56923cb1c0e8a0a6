package audit

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/posfleet/posfleet/server/store"
)

// pruneBatch is how many events one store transaction of Prune deletes.
const pruneBatch = 500

// Prune deletes the events older than before, oldest first, with their
// index entries, and returns how many it deleted. When export is not nil
// each batch of events is handed to it before the batch is deleted, and
// an export error stops Prune with nothing of that batch deleted: export
// must have the events stored durably when it returns. Counts (Count,
// MismatchesByTerminal) then cover the events still in the trail.
func (l *Log) Prune(ctx context.Context, before time.Time, export func([]Event) error) (int, error) {
	total := 0
	for {
		var evs []Event
		err := l.db.View(func(tx *store.Txn) error {
			return tx.Iterate(prefixEvent, nil, func(k, v []byte) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				var e Event
				if err := decode(v, &e); err != nil {
					return fmt.Errorf("audit: decode %x: %w", k, err)
				}
				if !e.Time.Before(before) || len(evs) == pruneBatch {
					return store.ErrStop
				}
				e.ID = binary.BigEndian.Uint64(k[len(prefixEvent):])
				evs = append(evs, e)
				return nil
			})
		})
		if err != nil || len(evs) == 0 {
			return total, err
		}
		if export != nil {
			if err := export(evs); err != nil {
				return total, fmt.Errorf("audit: export before pruning: %w", err)
			}
		}
		err = l.db.UpdateReserved(func(tx *store.Txn) error {
			for i := range evs {
				if err := unput(tx, &evs[i]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		l.uncount(evs)
		total += len(evs)
		if len(evs) < pruneBatch {
			return total, nil
		}
	}
}

// unput deletes an event and its index entries (see put).
func unput(tx *store.Txn, e *Event) error {
	keys := [][]byte{
		store.AppendUint64(append([]byte{}, prefixEvent...), e.ID),
		indexKey(prefixByType, fmt.Sprint(int32(e.Type)), e.ID),
	}
	if e.MerchantID != "" {
		keys = append(keys, indexKey(prefixByMerchant, e.MerchantID, e.ID))
	}
	if e.TerminalID != "" {
		keys = append(keys, indexKey(prefixByTerminal, e.TerminalID, e.ID))
	}
	for _, k := range keys {
		if err := tx.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// uncount takes pruned events out of the counts.
func (l *Log) uncount(evs []Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := &l.counted
	for i := range evs {
		e := &evs[i]
		if e.Type <= 0 || e.Type >= typeCount {
			continue
		}
		mism := e.Type == MerchantMismatch && e.TerminalID != ""
		switch {
		case e.ID >= c.before:
			l.counts[e.Type]--
			if mism {
				l.mismatches[e.TerminalID]--
			}
		case c.known[e.Type]:
			c.n[e.Type]--
			if mism {
				c.mismatches[e.TerminalID]--
			}
		}
		// Types not counted yet are counted from the index, which no
		// longer holds the pruned events.
	}
}

// RetentionOptions configure the audit trail's retention (see Retain).
type RetentionOptions struct {
	// Retention is how long events are kept; zero keeps them for good.
	Retention time.Duration
	// Interval is how often events past Retention are pruned.
	Interval time.Duration
	// Export, when set, receives each batch of events before it is
	// deleted (see Prune).
	Export func([]Event) error
}

// Retain prunes the events older than opts.Retention now and then every
// opts.Interval until Close. Failures are logged and retried at the next
// interval; events are never deleted without their export.
func (l *Log) Retain(opts RetentionOptions) {
	if opts.Retention <= 0 || opts.Interval <= 0 {
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-l.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		t := time.NewTicker(opts.Interval)
		defer t.Stop()
		for {
			n, err := l.Prune(ctx, l.now().Add(-opts.Retention), opts.Export)
			switch {
			case err != nil && ctx.Err() == nil:
				l.logger.Error("audit: prune", "err", err, "pruned", n)
			case n > 0:
				l.logger.Info("audit: pruned events past retention", "pruned", n, "retention", opts.Retention)
			}
			select {
			case <-t.C:
			case <-l.done:
				return
			}
		}
	}()
}

// readBudget is how many events one List call reads for a page of limit
// (see List).
func readBudget(limit int) int { return max(100*(limit+1), 10000) }
