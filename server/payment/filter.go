package payment

import (
	"sync/atomic"
	"time"

	"github.com/bits-and-blooms/bloom/v3"

	"github.com/posfleet/posfleet/server/store"
)

// The request filter answers most idempotency lookups that miss in memory
// without reading the disk. Entries of before Open, and those that left
// memory early (Options.MaxEntries), are on disk; a lookup of a request ID
// that is not in memory reads two or three keys there (request record,
// request index, tombstone), although nearly every such request ID is new.
// The filter is a Bloom filter over the terminal and request ID of every
// idempotency record and tombstone on disk or about to be: when it says a
// request ID is absent, it is, and the disk is not read; when it says it
// may be present (a false positive, about 1% when sized right), the disk is
// read as before. So a filter can only save reads, never lose an entry.
//
// At Open a goroutine builds it from the keys on disk (one pass over the
// keys of the retention period, without their values), while the engine
// already serves and reads the disk for every miss. The decision loop adds
// the request IDs it records meanwhile to a filter of the same shape and
// merges the two when the built one arrives. When more request IDs were
// added than the filter was sized for, its false positives grow: the loop
// drops it and builds a new one the same way.
type reqFilter struct {
	// f is the filter in use, nil while one is being built; pending
	// collects the request IDs recorded meanwhile. Both are the loop's.
	f, pending *bloom.BloomFilter
	// added counts the request IDs added to f and pending; capacity is
	// what they were sized for.
	added, capacity uint
	// buf is the lookup key's buffer.
	buf []byte
}

// filterFalsePositives is the false-positive rate the filter is sized for.
const filterFalsePositives = 0.01

// minFilterCapacity is the smallest number of request IDs a filter is
// sized for (1.2 MB).
const minFilterCapacity = 1 << 20

// filterBuild is a filter being built from disk by a goroutine.
type filterBuild struct {
	// done is closed when the goroutine returned; f is then the filter,
	// or nil when it failed or was stopped.
	done chan struct{}
	f    *bloom.BloomFilter
	// stop asks the goroutine to stop early (Close).
	stop atomic.Bool
}

// filterKey returns the filter's key of a request ID of a terminal; tomb
// tells tombstones apart from the other records.
func (rf *reqFilter) key(terminal, requestID string, tomb bool) []byte {
	b := rf.buf[:0]
	if tomb {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = append(append(append(b, terminal...), '/'), requestID...)
	rf.buf = b
	return b
}

// add records that a request ID of a terminal has an idempotency record
// (or, tomb, a tombstone) on disk or in a commit being gathered.
func (e *Engine) filterAdd(terminal, requestID string, tomb bool) {
	rf := &e.st.filter
	k := rf.key(terminal, requestID, tomb)
	switch {
	case rf.f != nil:
		rf.f.Add(k)
	case rf.pending != nil:
		rf.pending.Add(k)
	}
	rf.added++
	if rf.added > rf.capacity && rf.f != nil {
		e.startFilter()
	}
}

// filterAbsent reports whether the filter knows that a request ID of a
// terminal has no record on disk (tomb: no tombstone) created after
// cutoff. It is false while no filter is ready.
func (e *Engine) filterAbsent(terminal, requestID string, tomb bool, cutoff int64) bool {
	rf := &e.st.filter
	if rf.f == nil {
		if !e.filterArrived() {
			return false
		}
	}
	if !tomb && e.st.indexedSince > cutoff {
		// Entries of a ledger written before request indexes have
		// none: only a scan finds them.
		return false
	}
	return !rf.f.Test(rf.key(terminal, requestID, tomb))
}

// filterArrived takes the built filter, if it arrived, merging in the
// request IDs recorded while it was built; it reports whether a filter is
// now in use.
func (e *Engine) filterArrived() bool {
	rf, b := &e.st.filter, e.filterBuild
	if b == nil {
		return false
	}
	select {
	case <-b.done:
	default:
		return false
	}
	e.filterBuild = nil
	if b.f == nil || b.f.Merge(rf.pending) != nil {
		return false // the next start builds one again
	}
	rf.f, rf.pending = b.f, nil
	return true
}

// startFilter drops the filter in use and builds a new one, sized for
// twice the live idempotency records estimated from the ledger's last
// retention period, at least minFilterCapacity.
func (e *Engine) startFilter() {
	e.stopFilter() // superseded
	e.filterBuild = nil
	e.filterReady.Store(false)
	st := e.st
	capacity := uint(minFilterCapacity)
	if e.opts.filterCapacity > 0 {
		capacity = uint(e.opts.filterCapacity)
	}
	if n := st.nextSeq - e.windowSeq; n > 0 && e.opts.filterCapacity == 0 {
		capacity = max(capacity, uint(2*n))
	}
	rf := &st.filter
	rf.f = nil
	rf.pending = bloom.NewWithEstimates(capacity, filterFalsePositives)
	rf.added, rf.capacity = 0, capacity
	b := &filterBuild{done: make(chan struct{})}
	e.filterBuild = b
	m, k := rf.pending.Cap(), rf.pending.K()
	// The request IDs added so far are in commits up to the current one:
	// the build reads the store once they are durable, so that none is
	// in neither filter.
	target := st.commitSeq
	go func() {
		defer close(b.done)
		for e.durable.Load() < target {
			if b.stop.Load() || e.failed.Load() {
				return
			}
			time.Sleep(time.Millisecond)
		}
		f := bloom.New(m, k)
		if err := e.db.View(func(txn *store.Txn) error {
			if e.opts.filterHook != nil {
				e.opts.filterHook()
			}
			return filterKeys(txn, f, &b.stop)
		}); err != nil {
			if !b.stop.Load() {
				e.logger.Warn("payment: request filter not built; idempotency lookups read the disk", "err", err)
			}
			return
		}
		b.f = f
		e.filterReady.Store(true)
	}()
}

// stopFilter stops a filter build and waits for it (Close).
func (e *Engine) stopFilter() {
	if b := e.filterBuild; b != nil {
		b.stop.Store(true)
		<-b.done
	}
}

// filterKeys adds to f the request IDs of every idempotency record,
// request index and tombstone in the store, reading keys only.
func filterKeys(txn *store.Txn, f *bloom.BloomFilter, stop *atomic.Bool) error {
	var rf reqFilter
	for _, p := range []struct {
		prefix []byte
		tomb   bool
	}{{prefixRequest, false}, {prefixReqIndex, false}, {prefixTombstone, true}} {
		err := txn.IterateKeys(p.prefix, func(k []byte) error {
			if stop.Load() {
				return store.ErrStop
			}
			terminal, requestID, ok := splitTermKey(k, p.prefix)
			if ok {
				f.Add(rf.key(terminal, requestID, p.tomb))
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if stop.Load() {
		return store.ErrStop
	}
	return nil
}

// RequestFilterReady reports whether the request filter has been built
// since Open (see reqFilter), so that idempotency lookups of new request
// IDs no longer read the disk. It is safe for concurrent use.
func (e *Engine) RequestFilterReady() bool {
	return e.filterReady.Load()
}
