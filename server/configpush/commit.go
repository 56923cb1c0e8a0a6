package configpush

import (
	"context"
	"sync"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store"
)

// maxOpsPerTxn bounds the writes of one storage transaction, well below
// Badger's per-transaction limit with the default memtable size.
const maxOpsPerTxn = 4096

// auditKeysPerEvent bounds the keys one audit event writes (the event and
// its indexes), counted against maxOpsPerTxn.
const auditKeysPerEvent = 4

// op is one storage write: a set, or a delete when del is true.
type op struct {
	key, val []byte
	del      bool
}

// commitReq is a group of writes submitted together; done is closed once
// they are durable (or failed, err set).
type commitReq struct {
	ops []op
	// events are audit events committed in the transaction that holds the
	// request's last op.
	events []audit.Event
	err    error
	done   chan struct{}
}

// wait blocks until the request is committed.
func (r *commitReq) wait() error {
	<-r.done
	return r.err
}

// waitCtx is wait that gives up (the writes still happen) when ctx ends.
func (r *commitReq) waitCtx(ctx context.Context) error {
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// committer writes requests in submission order, gathering every request
// submitted while the previous synced commit was in flight into the next
// one (group commit). Submitting never blocks.
type committer struct {
	db   *store.DB
	log  *audit.Log // nil: events are not written
	wake chan struct{}
	done chan struct{}

	mu sync.Mutex // guards queue and closed
	// queue holds requests not yet picked up by the writer, in order.
	queue  []*commitReq
	closed bool
}

func newCommitter(db *store.DB, log *audit.Log) *committer {
	c := &committer{db: db, log: log, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go c.loop()
	return c
}

// submit queues ops. After close it fails the request with ErrClosed.
func (c *committer) submit(ops []op) *commitReq { return c.submitAudited(ops, nil) }

// submitAudited queues ops with the audit events that record them: both
// are durable together, or neither.
func (c *committer) submitAudited(ops []op, events []audit.Event) *commitReq {
	r := &commitReq{ops: ops, events: events, done: make(chan struct{})}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		r.err = ErrClosed
		close(r.done)
		return r
	}
	c.queue = append(c.queue, r)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return r
}

// close writes what is queued and stops the writer.
func (c *committer) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.done
		return
	}
	c.closed = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-c.done
}

func (c *committer) loop() {
	defer close(c.done)
	for range c.wake {
		for {
			c.mu.Lock()
			batch, closed := c.queue, c.closed
			c.queue = nil
			c.mu.Unlock()
			if len(batch) == 0 {
				if closed {
					return
				}
				break
			}
			c.write(batch)
		}
	}
}

// write commits batch in as few transactions as the size limit allows, in
// order. A request larger than one transaction spans several.
func (c *committer) write(batch []*commitReq) {
	var (
		txnOps  []op
		members []*commitReq // requests whose last op is in txnOps
		failed  error
	)
	flush := func() {
		var evs []audit.Event
		if c.log != nil {
			for _, r := range members {
				evs = append(evs, r.events...)
			}
			evs = c.log.Prepare(evs)
		}
		if (len(txnOps) > 0 || len(evs) > 0) && failed == nil {
			failed = c.db.Update(func(tx *store.Txn) error {
				for _, o := range txnOps {
					var err error
					if o.del {
						err = tx.Delete(o.key)
					} else {
						err = tx.Set(o.key, o.val)
					}
					if err != nil {
						return err
					}
				}
				if c.log != nil {
					return c.log.Stage(tx, evs)
				}
				return nil
			})
		}
		if c.log != nil {
			if failed == nil {
				c.log.Committed(evs)
			} else {
				c.log.Abandon(evs)
			}
		}
		for _, r := range members {
			r.err = failed
			close(r.done)
		}
		txnOps, members = txnOps[:0], members[:0]
	}
	n := 0 // writes of the transaction being built: ops, and audit keys
	for _, r := range batch {
		for _, o := range r.ops {
			if n >= maxOpsPerTxn {
				flush()
				n = 0
			}
			txnOps = append(txnOps, o)
			n++
		}
		members = append(members, r)
		n += auditKeysPerEvent * len(r.events)
	}
	flush()
}
