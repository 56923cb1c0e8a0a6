package payment

import (
	"crypto/rand"
	mrand "math/rand/v2"
	"sort"
)

// state is what the decision loop knows. Only the loop goroutine touches it
// (and Open, before the loop starts), so it needs no locks.
type state struct {
	terms map[string]*termState
	// txs holds recent transactions and every transaction with a write not
	// yet durable; others are read from disk when needed.
	txs map[uint64]*tx
	// nextSeq is the ledger sequence number of the next transaction.
	nextSeq uint64
	// commitSeq is the number of the last commit handed out (commits are
	// numbered from 1).
	commitSeq uint64
	// last is the latest decision time (unix nanoseconds): decision times
	// never go backwards, so ledger order is time order.
	last int64
	// rng draws approval codes.
	rng *mrand.Rand

	// entryQ orders idempotency entries and tombstones by creation, txQ
	// transactions by last touch, velQ approvals by time, for expiry.
	entryQ, txQ, velQ fifo
	// entryCount counts idempotency entries and tombstones in memory.
	entryCount int
	// evictedUntil is the creation time of the newest entry or tombstone
	// dropped from memory before it expired (MaxEntries); lookups that miss
	// in memory check the disk while it is within the retention period.
	evictedUntil int64
}

func newState() *state {
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		panic("payment: no randomness for approval codes: " + err.Error())
	}
	return &state{
		terms:   map[string]*termState{},
		txs:     map[uint64]*tx{},
		nextSeq: 1,
		rng:     mrand.New(mrand.NewChaCha8(seed)),
	}
}

// termState is what the loop knows about one terminal.
type termState struct {
	id string
	// entries maps request IDs to idempotency entries; all kinds of request
	// share the namespace.
	entries map[string]*entry
	// tombs maps original request IDs reversed before they arrived to the
	// tombstone's creation time.
	tombs map[string]*tomb
	// batch is the open batch; nil until the terminal's first request.
	batch *batchState
	// days holds approved amounts (sales and pre-auths, less reversals) per
	// business date, for daily limits.
	days map[string]int64
	// vel holds approval times (ascending) per card token digest.
	vel map[uint64][]int64
}

type tomb struct {
	created int64
	pending uint64
}

func (st *state) term(id string) *termState {
	ts := st.terms[id]
	if ts == nil {
		ts = &termState{
			id:      id,
			entries: map[string]*entry{},
			tombs:   map[string]*tomb{},
			days:    map[string]int64{},
			vel:     map[uint64][]int64{},
		}
		st.terms[id] = ts
	}
	return ts
}

// addDay adds amount to the total of date.
func (ts *termState) addDay(date string, amount int64) {
	ts.days[date] += amount
	ts.pruneDays()
}

// pruneDays keeps the three latest business dates: today's in any time
// zone, and the day before for reversals.
func (ts *termState) pruneDays() {
	for len(ts.days) > 3 {
		oldest := ""
		for d := range ts.days {
			if oldest == "" || d < oldest {
				oldest = d
			}
		}
		delete(ts.days, oldest)
	}
}

// velocityCount returns how many approvals of the card are later than
// cutoff.
func (ts *termState) velocityCount(hash uint64, cutoff int64) int {
	ring := ts.vel[hash]
	i := sort.Search(len(ring), func(i int) bool { return ring[i] > cutoff })
	return len(ring) - i
}

// authCode draws a six-character approval code of A-Z and 0-9.
func (st *state) authCode() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	var b [6]byte
	v := st.rng.Uint64()
	for i := range b {
		b[i] = alphabet[v%uint64(len(alphabet))]
		v /= uint64(len(alphabet))
	}
	return string(b[:])
}

// expiring is an item of an expiry queue.
type expiring struct {
	at   int64
	ts   *termState
	key  string // request ID (entries, tombstones)
	tomb bool
	seq  uint64 // transaction (txQ)
	hash uint64 // card digest (velQ)
}

// fifo is a queue of expiring items.
type fifo struct {
	items []expiring
	head  int
}

func (q *fifo) push(it expiring) { q.items = append(q.items, it) }
func (q *fifo) len() int         { return len(q.items) - q.head }
func (q *fifo) front() *expiring { return &q.items[q.head] }

func (q *fifo) pop() {
	q.items[q.head] = expiring{}
	q.head++
	if q.head > 1024 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items = q.items[:n]
		q.head = 0
	}
}

// commit is the set of decisions gathered for one synced store commit.
type commit struct {
	seq uint64
	// ops are released when the commit returned.
	ops []*op
	// writes are staged in order; a later write of a key wins.
	writes []write
	// batches are open or closed batches to write, encoded when sealed.
	batches []*batchState
	bytes   int
	// decisions counts the decisions that wrote records.
	decisions int
}

type write struct {
	key, value []byte
	del        bool
}

func (st *state) newCommit() *commit {
	st.commitSeq++
	return &commit{seq: st.commitSeq}
}

func (c *commit) put(k, v []byte) {
	c.writes = append(c.writes, write{key: k, value: v})
	c.bytes += len(k) + len(v) + 24
}

func (c *commit) del(k []byte) {
	c.writes = append(c.writes, write{key: k, del: true})
	c.bytes += len(k) + 24
}

func (c *commit) markDirty(b *batchState) {
	if !b.dirty {
		b.dirty = true
		c.batches = append(c.batches, b)
		c.bytes += 192
	}
}

func (c *commit) empty() bool { return len(c.ops) == 0 && len(c.writes) == 0 && len(c.batches) == 0 }

// full reports whether the commit should take no more decisions. One
// decision writes less than 2 KiB, so a commit below the byte budget less
// that margin has room for one more.
func (c *commit) full(o *Options) bool {
	return len(c.ops) >= o.MaxBatchOps || c.bytes >= o.MaxBatchBytes-4<<10
}

// seal encodes the dirty batches: the open one under its terminal's
// open-batch key, closed ones under their number.
func (c *commit) seal() {
	for _, b := range c.batches {
		b.dirty = false
		if b.state == BatchStateOpen {
			c.put(keyOpenBatch(b.terminal), b.encode())
		} else {
			c.put(keyBatch(b.terminal, b.number), b.encode())
		}
	}
	c.batches = nil
}
