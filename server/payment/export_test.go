package payment

import (
	"context"
	"errors"
)

// SetCommitHook makes every commit of an engine opened with o call hook
// after staging its records and before making them durable; an error
// aborts the commit.
func SetCommitHook(o *Options, hook func() error) { o.commitHook = hook }

// SetSyncHook makes every commit of an engine opened with o call hook after
// the commit returned and before its answers are released, like a slow or
// failing fsync; an error fails the commit.
func SetSyncHook(o *Options, hook func() error) { o.syncHook = hook }

// SetCommitWritesHook makes every commit of an engine opened with o tell
// hook how many keys it writes or deletes.
func SetCommitWritesHook(o *Options, hook func(n int)) { o.commitWrites = hook }

// Housekeep runs the engine's housekeeping now and waits until the records
// it deleted are durable.
func (e *Engine) Housekeep(ctx context.Context) error {
	return e.submit(ctx, &op{kind: opHousekeep, done: make(chan struct{}, 1)})
}

// MemoryEntries returns how many idempotency entries and tombstones the
// engine holds in memory. It must not race with requests.
func (e *Engine) MemoryEntries(ctx context.Context) (int, error) {
	o := &op{kind: opHousekeep, done: make(chan struct{}, 1)}
	if err := e.submit(ctx, o); err != nil {
		return 0, err
	}
	return e.st.entryCount, nil
}

// DisableCheckpoints makes an engine opened with o never checkpoint open
// batches' totals (not even on Close), so that reopening must rebuild them
// from the ledger as after a crash.
func DisableCheckpoints(o *Options) { o.noCheckpoints = true }

// CheckpointBacklog returns how many open batches wait for a checkpoint. It
// must not race with requests.
func (e *Engine) CheckpointBacklog(ctx context.Context) (int, error) {
	o := &op{kind: opHousekeep, done: make(chan struct{}, 1)}
	if err := e.submit(ctx, o); err != nil {
		return 0, err
	}
	return len(e.st.unsaved), nil
}

// EntryScans returns how many idempotency lookups scanned a terminal's
// ledger. It must not race with requests.
func (e *Engine) EntryScans(ctx context.Context) (int, error) {
	o := &op{kind: opHousekeep, done: make(chan struct{}, 1)}
	if err := e.submit(ctx, o); err != nil {
		return 0, err
	}
	return e.st.entryScans, nil
}

// MemoryTransactions returns how many transactions the engine holds in
// memory, after housekeeping. It must not race with requests.
func (e *Engine) MemoryTransactions(ctx context.Context) (int, error) {
	if err := e.Housekeep(ctx); err != nil {
		return 0, err
	}
	return len(e.st.txs), nil
}

// MarkSequence returns the last ledger sequence number of a watermark
// value.
func MarkSequence(v []byte) (uint64, error) {
	h, err := decodeHead(v)
	return h.seq, err
}

// SetMarkHook makes every commit of an engine opened with o call hook
// before recording the commit in the watermark.
func SetMarkHook(o *Options, hook func()) { o.markHook = hook }

// LoadedTerminals returns how many terminals' states the engine holds in
// memory. It must not race with requests.
func (e *Engine) LoadedTerminals(ctx context.Context) (int, error) {
	o := &op{kind: opHousekeep, done: make(chan struct{}, 1)}
	if err := e.submit(ctx, o); err != nil {
		return 0, err
	}
	n := 0
	for _, ts := range e.st.terms {
		if ts.loaded {
			n++
		}
	}
	return n, nil
}

// SetFilterCapacity makes an engine opened with o size its request filter
// for n request IDs.
func SetFilterCapacity(o *Options, n int) { o.filterCapacity = n }

// DiskLookups returns how many idempotency lookups read the disk and
// whether the request filter is in use. It must not race with requests.
func (e *Engine) DiskLookups(ctx context.Context) (n int, filtering bool, err error) {
	o := &op{kind: opHousekeep, done: make(chan struct{}, 1)}
	if err := e.submit(ctx, o); err != nil {
		return 0, false, err
	}
	return e.st.diskLookups, e.st.filter.f != nil || e.filterArrived(), nil
}

// SetFilterHook makes the goroutine that builds the request filter of an
// engine opened with o call hook in its store transaction, before it
// reads.
func SetFilterHook(o *Options, hook func()) { o.filterHook = hook }

// CheckRequestID runs the decision loop's idempotency lookup of a request
// ID of a terminal, as a request would, with or without the request
// filter, and reports whether an entry was found. Only after Close: the
// loop owns the state while it runs.
func (e *Engine) CheckRequestID(terminal, requestID string, filter bool) (bool, error) {
	st := e.st
	if st.filter.f == nil && !e.filterArrived() && filter {
		return false, errors.New("request filter not built")
	}
	saved := st.filter.f
	if !filter {
		st.filter.f = nil
		defer func() { st.filter.f = saved }()
	}
	now := e.clock().UnixNano()
	en, err := e.lookupEntry(st.term(terminal), st.req(requestID), now)
	return en != nil, err
}

// SetReadBudget makes every ListTransactions call read at most n
// transactions (see scanBudget). Not while queries run.
func (e *Engine) SetReadBudget(n int) { e.readBudget = n }

// QueryReads returns how many index keys and transactions ListTransactions
// read since Open.
func (e *Engine) QueryReads() uint64 { return e.queryReads.Load() }
