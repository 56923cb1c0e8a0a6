package configpush

import (
	"context"
	"sync"

	"github.com/posfleet/posfleet/server/store"
)

// maxOpsPerTxn bounds the writes of one storage transaction, well below
// Badger's per-transaction limit with the default memtable size.
const maxOpsPerTxn = 4096

// op is one storage write: a set, or a delete when del is true.
type op struct {
	key, val []byte
	del      bool
}

// commitReq is a group of writes submitted together; done is closed once
// they are durable (or failed, err set).
type commitReq struct {
	ops  []op
	err  error
	done chan struct{}
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
	wake chan struct{}
	done chan struct{}

	mu sync.Mutex // guards queue and closed
	// queue holds requests not yet picked up by the writer, in order.
	queue  []*commitReq
	closed bool
}

func newCommitter(db *store.DB) *committer {
	c := &committer{db: db, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go c.loop()
	return c
}

// submit queues ops. After close it fails the request with ErrClosed.
func (c *committer) submit(ops []op) *commitReq {
	r := &commitReq{ops: ops, done: make(chan struct{})}
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
		if len(txnOps) > 0 && failed == nil {
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
				return nil
			})
		}
		for _, r := range members {
			r.err = failed
			close(r.done)
		}
		txnOps, members = txnOps[:0], members[:0]
	}
	for _, r := range batch {
		for _, o := range r.ops {
			if len(txnOps) == maxOpsPerTxn {
				flush()
			}
			txnOps = append(txnOps, o)
		}
		members = append(members, r)
	}
	flush()
}
