package payment

import (
	"crypto/rand"
	"encoding/binary"
	"hash/maphash"
	mrand "math/rand/v2"
	"sort"
	"time"
)

// state is what the decision loop knows. Only the loop goroutine touches it
// (and Open, before the loop starts), so it needs no locks.
type state struct {
	terms map[string]*termState
	// termList holds the terminals by termState.idx, so that expiry queues
	// refer to them without pointers.
	termList []*termState
	// seeds key the request-ID digests (reqKey).
	seeds [2]maphash.Seed
	// txs holds recent transactions and every transaction with a write not
	// yet durable; others are read from disk when needed.
	txs map[uint64]cachedTx
	// nextSeq is the ledger sequence number of the next transaction.
	nextSeq uint64
	// head is the ledger head as of the last commit sealed.
	head head
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
	entryQ, velQ fifo[expiring]
	txQ          fifo[expiringTx]
	// entryCount counts idempotency entries and tombstones in memory.
	entryCount int
	// merchTerms records the terminals known to have transacted for each
	// merchant (persisted under pay/mt/ for merchant listings).
	merchTerms map[string]map[string]bool
	// unsaved lists open batches whose totals changed since their record
	// was last written; housekeeping checkpoints them.
	unsaved []*batchState

	// evictedUntil is the creation time of the newest entry or tombstone
	// dropped from memory before it expired (MaxEntries); lookups that miss
	// in memory check the disk while it is within the retention period.
	evictedUntil int64
	// indexedSince is the time from which every Authorize and Refund entry
	// has a request index on disk; older entries of the retention period
	// are found by scanning the terminal's ledger (stores written before
	// the index existed).
	indexedSince int64
	// entryScans counts lookups that scanned a terminal's ledger,
	// diskLookups those that read the disk.
	entryScans, diskLookups int
	// filter answers lookups of request IDs that are not on disk (see
	// reqFilter).
	filter reqFilter
}

func newState() *state {
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		panic("payment: no randomness for approval codes: " + err.Error())
	}
	return &state{
		seeds:      [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		terms:      map[string]*termState{},
		txs:        map[uint64]cachedTx{},
		merchTerms: map[string]map[string]bool{},
		nextSeq:    1,
		rng:        mrand.New(mrand.NewChaCha8(seed)),
	}
}

// reqKey stands for a request ID of a terminal in memory: a 128-bit
// digest (two seeded 64-bit hashes), so that the maps and queues that hold
// idempotency state have no pointers for the collector to follow. Two
// request IDs of one terminal share a key with a probability of about
// n²/2¹²⁹ for n live entries.
type reqKey [16]byte

func (st *state) key(requestID string) reqKey {
	var k reqKey
	binary.LittleEndian.PutUint64(k[:8], maphash.String(st.seeds[0], requestID))
	binary.LittleEndian.PutUint64(k[8:], maphash.String(st.seeds[1], requestID))
	return k
}

// reqID is a request ID with its key, computed once per decision.
type reqID struct {
	id  string
	key reqKey
}

func (st *state) req(id string) reqID { return reqID{id: id, key: st.key(id)} }

// termState is what the loop knows about one terminal.
type termState struct {
	id string
	// idx is the terminal's index in state.termList.
	idx uint32
	// loaded is set once the terminal's state was read from disk (see
	// Engine.terminal).
	loaded bool
	// entries maps request IDs to idempotency entries; all kinds of request
	// share the namespace. The answers of CloseBatch entries are in closes.
	entries map[reqKey]entryRec
	closes  map[reqKey]*CloseBatchResult
	// tombs maps original request IDs reversed before they arrived to their
	// tombstones.
	tombs map[reqKey]tomb
	// batch is the open batch; nil until the terminal's first request.
	batch *batchState
	// days holds approved amounts (sales and pre-auths, less reversals) per
	// business date, for daily limits.
	days map[string]int64
	// vel holds approval times (ascending) per card token digest.
	vel map[uint64][]int64
	// day caches the business date of the last decision: date is the date
	// in loc for times in [dayFrom, dayTo).
	dayLoc         *time.Location
	dayFrom, dayTo int64
	date           string
}

// businessDate returns the date of now in loc ("YYYY-MM-DD").
func (term *termState) businessDate(now int64, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	if loc == term.dayLoc && now >= term.dayFrom && now < term.dayTo {
		return term.date
	}
	t := time.Unix(0, now).In(loc)
	y, m, d := t.Date()
	// Both midnights come from the date, not one from the other: where a
	// day starts at 01:00 because clocks jump at midnight, adding a day to
	// its start would end the next day's first hour on the wrong date.
	start := time.Date(y, m, d, 0, 0, 0, 0, loc).UnixNano()
	next := time.Date(y, m, d+1, 0, 0, 0, 0, loc).UnixNano()
	term.dayLoc, term.dayFrom, term.dayTo = loc, min(start, now), next
	term.date = t.Format(dateLayout)
	return term.date
}

type tomb struct {
	created int64
	pending uint64
}

func (st *state) term(id string) *termState {
	term := st.terms[id]
	if term == nil {
		term = &termState{
			id:      id,
			idx:     uint32(len(st.termList)),
			entries: map[reqKey]entryRec{},
			closes:  map[reqKey]*CloseBatchResult{},
			tombs:   map[reqKey]tomb{},
			days:    map[string]int64{},
			vel:     map[uint64][]int64{},
		}
		st.terms[id] = term
		st.termList = append(st.termList, term)
	}
	return term
}

// entry returns the idempotency entry of k in memory, with its CloseBatch
// answer.
func (term *termState) entry(k reqKey) *entry {
	rec, ok := term.entries[k]
	if !ok {
		return nil
	}
	return &entry{entryRec: rec, close: term.closes[k]}
}

// addDay adds amount to the total of date.
func (term *termState) addDay(date string, amount int64) {
	term.days[date] += amount
	term.pruneDays()
}

// pruneDays keeps the three latest business dates: today's in any time
// zone, and the day before for reversals.
func (term *termState) pruneDays() {
	for len(term.days) > 3 {
		oldest := ""
		for d := range term.days {
			if oldest == "" || d < oldest {
				oldest = d
			}
		}
		delete(term.days, oldest)
	}
}

// velocityCount returns how many approvals of the card are later than
// cutoff.
func (term *termState) velocityCount(hash uint64, cutoff int64) int {
	ring := term.vel[hash]
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

// expiring is an idempotency entry or tombstone (entryQ) or a card
// approval (velQ) in an expiry queue. It holds no pointers, so the
// collector does not scan the queues.
type expiring struct {
	at   int64
	term uint32 // termState.idx
	tomb bool
	key  reqKey // entries, tombstones
	hash uint64 // card digest (velQ)
}

// expiringTx is a cached transaction in txQ; it holds no pointers, so the
// collector does not scan the queue.
type expiringTx struct {
	at  int64
	seq uint64
}

// fifo is a queue of expiring items, kept in fixed-size blocks so that it
// grows and shrinks without copying.
type fifo[T any] struct {
	blocks [][]T
	head   int // next item in blocks[0]
	n      int
}

const fifoBlock = 1024

func (q *fifo[T]) push(it T) {
	if len(q.blocks) == 0 || len(q.blocks[len(q.blocks)-1]) == fifoBlock {
		q.blocks = append(q.blocks, make([]T, 0, fifoBlock))
	}
	last := &q.blocks[len(q.blocks)-1]
	*last = append(*last, it)
	q.n++
}

func (q *fifo[T]) len() int  { return q.n }
func (q *fifo[T]) front() *T { return &q.blocks[0][q.head] }

func (q *fifo[T]) pop() {
	var zero T
	q.blocks[0][q.head] = zero
	q.head++
	q.n--
	if q.head == fifoBlock {
		q.blocks[0] = nil
		q.blocks = q.blocks[1:]
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
	// created lists the terminals of the transactions the commit creates,
	// in sequence order from first; from and to bound their decision times.
	created  []string
	first    uint64
	from, to int64
	bytes    int
	// decisions counts the decisions that wrote records.
	decisions int
	// mark is the ledger head the commit writes, for the watermark; nil
	// when the commit writes nothing.
	mark []byte
}

type write struct {
	key, value []byte
	del        bool
	// ttl, when positive, makes the key expire on its own (see keyTTL).
	ttl time.Duration
}

func (st *state) newCommit() *commit {
	st.commitSeq++
	return &commit{seq: st.commitSeq}
}

func (c *commit) put(k, v []byte) {
	c.writes = append(c.writes, write{key: k, value: v})
	c.bytes += len(k) + len(v) + 24
}

// putTTL is put for a key that expires on its own after ttl.
func (c *commit) putTTL(k, v []byte, ttl time.Duration) {
	c.writes = append(c.writes, write{key: k, value: v, ttl: ttl})
	c.bytes += len(k) + len(v) + 32
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
// decision writes less than 2 KiB and fewer than 16 keys, so a commit below
// the budgets less those margins has room for one more. The keys counted
// are the staged writes, the batches to write and the chunk.
func (c *commit) full(o *Options) bool {
	return len(c.ops) >= o.MaxBatchOps || c.bytes >= o.MaxBatchBytes-4<<10 ||
		len(c.writes)+len(c.batches)+1 >= o.MaxBatchWrites-16
}

// created notes a new transaction in the commit's chunk.
func (c *commit) createdTx(t *tx) {
	if len(c.created) == 0 {
		c.first, c.from = t.seq, t.decided
	} else if t.seq != c.first+uint64(len(c.created)) {
		panic("payment: transactions of a commit are not consecutive")
	}
	c.created = append(c.created, t.terminal)
	c.to = t.decided
	c.bytes += 10 + len(t.terminal)
}

// seal writes the commit's chunk, chained to the one before, and encodes
// its dirty batches (the open one under its terminal's open-batch key,
// closed ones under their number) with asOf, the last ledger sequence
// number decided so far. A commit that writes anything also writes the
// ledger head h, which it advances.
func (c *commit) seal(asOf uint64, h *head) {
	if len(c.created) > 0 {
		ch := chunk{first: c.first, from: c.from, to: c.to, terminals: c.created, prev: h.sum}
		v := ch.encode()
		c.put(keyChunk(c.first), v)
		h.sum = chainSum(v)
		h.seq = ch.next() - 1
	}
	for _, b := range c.batches {
		b.dirty = false
		if b.state == BatchStateOpen {
			b.asOf, b.unsaved = asOf, false
			c.put(keyOpenBatch(b.terminal), b.encode())
		} else {
			c.put(keyBatch(b.terminal, b.number), b.encode())
		}
	}
	c.batches = nil
	if len(c.writes) > 0 {
		h.commits++
		c.mark = h.encode()
		c.put(keyHead, c.mark)
	}
}

// hasKey reports whether m holds k.
func hasKey[V any](m map[reqKey]V, k reqKey) bool {
	_, ok := m[k]
	return ok
}
