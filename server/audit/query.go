package audit

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/posfleet/posfleet/server/store"
)

// Page is a page of ListPage.
type Page struct {
	// Events matching the filter, newest first.
	Events []Event
	// NextPageToken goes on with older events; empty on the last page.
	NextPageToken string
	// SearchedFrom, when set, says that the page stopped at its read
	// budget before it was full: events recorded at or after it were
	// searched, and NextPageToken goes on with older ones.
	SearchedFrom time.Time
}

// List returns up to limit events matching f, newest first, and a token for
// the next page ("" on the last page). Events still queued are included only
// after they are flushed; call Flush first to read your own writes.
func (l *Log) List(ctx context.Context, f Filter, limit int, pageToken string) ([]Event, string, error) {
	p, err := l.ListPage(ctx, f, limit, pageToken)
	return p.Events, p.NextPageToken, err
}

// ListPage is List that also says how far back a page cut short by its
// read budget searched.
//
// A filter by terminal, merchant or type reads that index (of several,
// the sparsest where the page starts: see chooseIndex). A time range is a
// range of IDs, found by a binary search over the trail, since event times
// follow IDs (both are taken under one lock; payment events, stamped with
// their decision time, trail by their commit's latency, which timeSlack
// covers). So a page costs in proportion to its size and a few dozen
// seeks, whatever the trail holds. Where the events read do not match (a
// busy terminal at a busy merchant), one call reads at most
// readBudget(limit) of them and returns a shorter page, even an empty one,
// with the token to go on and SearchedFrom set.
func (l *Log) ListPage(ctx context.Context, f Filter, limit int, pageToken string) (Page, error) {
	if limit <= 0 {
		limit = 100
	}
	var before uint64 = 1<<64 - 1 // IDs below are listed
	if pageToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(pageToken)
		if err != nil || len(b) != 8 {
			return Page{}, ErrBadPageToken
		}
		before = binary.BigEndian.Uint64(b)
	}
	q := pageQuery{ctx: ctx, f: &f, limit: limit, budget: readBudget(limit)}
	if l.budget > 0 {
		q.budget = l.budget
	}
	err := l.db.View(func(tx *store.Txn) error {
		var from uint64 // IDs from here on are listed
		if !f.End.IsZero() {
			end, err := q.firstIDAt(tx, f.End.Add(timeSlack))
			if err != nil {
				return err
			}
			before = min(before, end)
		}
		if !f.Start.IsZero() {
			var err error
			if from, err = q.firstIDAt(tx, f.Start.Add(-timeSlack)); err != nil {
				return err
			}
		}
		if before <= from {
			return nil
		}
		idx, err := q.chooseIndex(tx, indexesFor(&f), before)
		if err != nil {
			return err
		}
		prefix := idx
		if idx == nil {
			prefix = prefixEvent
		}
		return tx.IterateReverse(prefix, startKey(prefix, before), func(k, v []byte) error {
			if len(k) != len(prefix)+8 {
				return nil // a longer prefix sharing this one's bytes
			}
			id := binary.BigEndian.Uint64(k[len(prefix):])
			if id < from {
				return store.ErrStop
			}
			if idx != nil {
				var err error
				if v, err = tx.Get(store.AppendUint64(append([]byte{}, prefixEvent...), id)); err != nil {
					return fmt.Errorf("audit: index points at missing event %d: %w", id, err)
				}
			}
			return q.collect(id, v)
		})
	})
	l.reads.Add(q.read)
	if err != nil {
		return Page{}, err
	}
	return q.page, nil
}

// timeSlack widens the ID range of a time range on both sides (the events
// read are still filtered by their times): an event may carry a time a
// little before the time its ID was given, as payment events carry their
// decision time and get their ID when their group commit is written.
const timeSlack = 10 * time.Second

// indexesFor returns the prefixes of the indexes that serve a part of f:
// by terminal, merchant and type.
func indexesFor(f *Filter) [][]byte {
	var out [][]byte
	add := func(prefix []byte, value string) {
		out = append(out, append(append(append([]byte{}, prefix...), value...), '/'))
	}
	if f.TerminalID != "" {
		add(prefixByTerminal, f.TerminalID)
	}
	if f.MerchantID != "" {
		add(prefixByMerchant, f.MerchantID)
	}
	if f.Type != TypeUnspecified {
		add(prefixByType, fmt.Sprint(int32(f.Type)))
	}
	return out
}

// probeWidth is how many keys below a page's start chooseIndex reads from
// each index that serves a filter, to tell which is sparsest there.
const probeWidth = 32

// chooseIndex returns the sparsest of idxs just below before (see
// store.Txn.Sparsest), the one that finds a match of all of them in the
// fewest reads; nil when there is none (the trail itself is read).
func (q *pageQuery) chooseIndex(tx *store.Txn, idxs [][]byte, before uint64) ([]byte, error) {
	switch len(idxs) {
	case 0:
		return nil, nil
	case 1:
		return idxs[0], nil
	}
	best, n, err := tx.Sparsest(idxs, before, probeWidth)
	q.read += uint64(n)
	return idxs[best], err
}

func startKey(prefix []byte, before uint64) []byte {
	if before == 1<<64-1 {
		return nil
	}
	return store.AppendUint64(append([]byte{}, prefix...), max(before, 1)-1)
}

// pageQuery gathers the events of one ListPage call.
type pageQuery struct {
	ctx   context.Context
	f     *Filter
	limit int
	// budget is how many more events the call may read.
	budget int
	// read counts the events read, for Log.reads.
	read uint64
	// oldest is the time of the oldest event read.
	oldest time.Time
	page   Page
}

// collect takes event id (its record v) into the page when it matches,
// and stops the scan when the page is full or the budget spent.
func (q *pageQuery) collect(id uint64, v []byte) error {
	if err := q.ctx.Err(); err != nil {
		return err
	}
	if q.budget--; q.budget < 0 {
		q.page.NextPageToken = pageToken(id + 1)
		q.page.SearchedFrom = q.oldest
		return store.ErrStop
	}
	q.read++
	var e Event
	if err := decode(v, &e); err != nil {
		return fmt.Errorf("audit: decode event %d: %w", id, err)
	}
	e.ID = id
	q.oldest = e.Time
	if !q.f.match(&e) {
		return nil
	}
	if len(q.page.Events) == q.limit {
		q.page.NextPageToken = pageToken(id + 1)
		return store.ErrStop
	}
	q.page.Events = append(q.page.Events, e)
	return nil
}

func pageToken(before uint64) string {
	return base64.RawURLEncoding.EncodeToString(store.AppendUint64(nil, before))
}

// firstIDAt returns an ID such that the events below it were recorded
// before t and the first one from it on at or after t: a binary search
// over the IDs of the trail, one seek per step. It is exact where event
// times follow IDs, as Log makes them; callers widen the range by
// timeSlack for events stamped before their ID was given (after a step
// back of the wall clock larger than that, events recorded around the
// step may fall outside).
func (q *pageQuery) firstIDAt(tx *store.Txn, t time.Time) (uint64, error) {
	last, ok, err := q.newest(tx)
	if err != nil || !ok {
		return 0, err
	}
	if last.Time.Before(t) {
		return last.ID + 1, nil
	}
	first, _, err := q.atOrAfter(tx, 0)
	if err != nil {
		return 0, err
	}
	// Invariant: the events below lo are before t; the first event from
	// hi on is not.
	lo, hi := first.ID, last.ID
	for lo < hi {
		mid := lo + (hi-lo)/2
		e, ok, err := q.atOrAfter(tx, mid)
		if err != nil {
			return 0, err
		}
		if ok && e.Time.Before(t) {
			lo = e.ID + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// atOrAfter reads the first event with an ID of at least id.
func (q *pageQuery) atOrAfter(tx *store.Txn, id uint64) (Event, bool, error) {
	k, v, ok, err := tx.First(prefixEvent, store.AppendUint64(append([]byte{}, prefixEvent...), id))
	return q.decodeAt(k, v, ok, err)
}

// newest reads the newest event.
func (q *pageQuery) newest(tx *store.Txn) (Event, bool, error) {
	return q.decodeAt(tx.Last(prefixEvent, nil))
}

// decodeAt decodes the event of key k found by a seek, and counts it as
// read.
func (q *pageQuery) decodeAt(k, v []byte, ok bool, err error) (e Event, _ bool, _ error) {
	if err != nil || !ok {
		return e, false, err
	}
	if len(k) != len(prefixEvent)+8 {
		return e, false, fmt.Errorf("audit: malformed key %x", k)
	}
	q.read++
	if err := decode(v, &e); err != nil {
		return e, false, fmt.Errorf("audit: decode %x: %w", k, err)
	}
	e.ID = binary.BigEndian.Uint64(k[len(prefixEvent):])
	return e, true, nil
}
