package payment

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/posfleet/posfleet/server/store"
)

// ErrCorrupt is returned by Open (and Verify) when the ledger on disk is
// damaged or incomplete: a record that does not decode, a gap or a broken
// hash in the chain of commit chunks, a transaction the ledger lists but
// the store lacks, or acknowledged commits missing from the store (the
// watermark file records more than the store holds). It wraps
// store.ErrCorrupt. The engine refuses to start on it rather than decide
// against a ledger that may have forgotten approvals.
var ErrCorrupt = fmt.Errorf("payment: ledger is damaged: %w", store.ErrCorrupt)

// recoveryHint ends every ErrCorrupt message.
const recoveryHint = "restore the data directory from a backup (posfleet restore); posfleet verify --data-dir DIR lists the damage"

// corrupt returns an ErrCorrupt error saying what is wrong.
func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s; %s", ErrCorrupt, fmt.Sprintf(format, args...), recoveryHint)
}

// Integrity of the ledger. Three records and one file tie it together:
//
//	pay/lg/<first seq>  each commit chunk holds the SHA-256 of the chunk
//	                    before it (zeros for the first), so the chunks form
//	                    a hash chain in sequence order: a gap or a changed
//	                    chunk breaks it
//	pay/hd              the head: how many commits the engine made, the last
//	                    ledger sequence number and the SHA-256 of the last
//	                    chunk; written with every commit
//	pay/key             a random AES-128 key, made with the database, that
//	                    turns sequence numbers into authorization IDs
//	pay/ep/<start seq>  a random epoch drawn at every start, for the
//	                    transactions from start on
//	WATERMARK           (store.Watermark) the head as of the last commit
//	                    acknowledged, synced after the commit and before
//	                    its answers are released
//
// At Open the head must match the last chunk, the chain must hold over
// the rebuild window, every transaction the window's chunks list must be
// present, and the head must have at least the watermark's commits. A
// write-ahead log that lost its tail loses the head with it, so the
// watermark is ahead and the engine refuses to start.
var (
	keyHead     = []byte("pay/hd")
	keyIDKey    = []byte("pay/key")
	prefixEpoch = []byte("pay/ep/")
)

const (
	recHead  = 'h'
	recKey   = 'k'
	recEpoch = 'e'
)

// head is the ledger's head record, also the watermark's value.
type head struct {
	commits uint64   // commits with writes the engine made, ever
	seq     uint64   // last ledger sequence number (0: none)
	sum     [32]byte // SHA-256 of the last chunk's value (zeros: none)
}

func (h *head) encode() []byte {
	e := newEncoder(recHead, 48)
	e.uint(h.commits)
	e.uint(h.seq)
	e.bytes(h.sum[:])
	return e.b
}

func decodeHead(v []byte) (head, error) {
	d := newDecoder(v, recHead)
	h := head{commits: d.uint(), seq: d.uint()}
	if sum := d.raw(); d.err == nil && len(sum) != len(h.sum) {
		d.err = errCorrupt
	} else {
		copy(h.sum[:], sum)
	}
	if d.err != nil {
		return head{}, fmt.Errorf("payment: decode head: %w", d.err)
	}
	return h, nil
}

// Authorization and refund IDs are "A" (authorizations, declines included)
// or "R" (refunds) followed by 32 upper-case hex digits: the AES-128
// encryption, under the database's key, of the transaction's epoch and
// its ledger sequence number (8 bytes each, big-endian). Without the key
// they cannot be guessed or counted; with it the engine reads the sequence
// number back and checks the epoch. A new random epoch is drawn at every
// start, so a ledger whose sequence went backwards (data lost, an old
// backup restored) still never hands out an ID twice.
const idLen = 1 + 2*aes.BlockSize

// idCodec makes and reads transaction IDs. It is built by Open and not
// changed afterwards, so it is safe for concurrent use.
type idCodec struct {
	block  cipher.Block
	epochs []epochStart // by start
}

// epochStart is the epoch of the transactions from sequence number start
// on (until the next epoch's start).
type epochStart struct {
	start uint64
	epoch uint64
}

func newIDCodec(key []byte, epochs []epochStart) (*idCodec, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, corrupt("ID key: %v", err)
	}
	return &idCodec{block: block, epochs: epochs}, nil
}

// epochOf returns the epoch of transaction seq.
func (c *idCodec) epochOf(seq uint64) (uint64, bool) {
	i, found := slices.BinarySearchFunc(c.epochs, seq, func(e epochStart, s uint64) int {
		switch {
		case e.start < s:
			return -1
		case e.start > s:
			return 1
		}
		return 0
	})
	if !found {
		if i == 0 {
			return 0, false
		}
		i--
	}
	return c.epochs[i].epoch, true
}

// id returns the ID of transaction seq of the given kind.
func (c *idCodec) id(kind TxKind, seq uint64) string {
	ep, _ := c.epochOf(seq)
	var block [aes.BlockSize]byte
	binary.BigEndian.PutUint64(block[:8], ep)
	binary.BigEndian.PutUint64(block[8:], seq)
	c.block.Encrypt(block[:], block[:])
	b := make([]byte, idLen)
	b[0] = idPrefix(kind)
	hex.Encode(b[1:], block[:])
	return string(bytes.ToUpper(b))
}

// idPrefix is the first letter of the IDs of transactions of kind: "R"
// for refunds, "C" for captures, "A" for authorizations.
func idPrefix(kind TxKind) byte {
	switch kind {
	case TxKindRefund:
		return 'R'
	case TxKindCapture:
		return 'C'
	}
	return 'A'
}

// parse returns the sequence number of an ID made by id and its first
// letter (see idPrefix); ok is false for anything else.
func (c *idCodec) parse(id string) (seq uint64, prefix byte, ok bool) {
	if len(id) != idLen || (id[0] != 'A' && id[0] != 'R' && id[0] != 'C') {
		return 0, 0, false
	}
	var block [aes.BlockSize]byte
	for i := 1; i < idLen; i++ {
		if ch := id[i]; !isDigit(ch) && (ch < 'A' || ch > 'F') {
			return 0, 0, false
		}
	}
	if _, err := hex.Decode(block[:], []byte(id[1:])); err != nil {
		return 0, 0, false
	}
	c.block.Decrypt(block[:], block[:])
	ep, seq := binary.BigEndian.Uint64(block[:8]), binary.BigEndian.Uint64(block[8:])
	if want, known := c.epochOf(seq); !known || want != ep || seq == 0 {
		return 0, 0, false
	}
	return seq, id[0], true
}

func encodeIDKey(key []byte) []byte {
	e := newEncoder(recKey, 20)
	e.bytes(key)
	return e.b
}

func decodeIDKey(v []byte) ([]byte, error) {
	d := newDecoder(v, recKey)
	key := d.raw()
	if d.err == nil && len(key) != 16 {
		d.err = errCorrupt
	}
	if d.err != nil {
		return nil, fmt.Errorf("payment: decode ID key: %w", d.err)
	}
	return key, nil
}

func keyEpoch(start uint64) []byte {
	return store.AppendUint64(bytes.Clone(prefixEpoch), start)
}

func encodeEpoch(epoch uint64) []byte {
	e := newEncoder(recEpoch, 12)
	e.uint(epoch)
	return e.b
}

func decodeEpoch(k, v []byte) (epochStart, error) {
	if len(k) != len(prefixEpoch)+8 {
		return epochStart{}, fmt.Errorf("payment: malformed epoch key %q: %w", k, errCorrupt)
	}
	d := newDecoder(v, recEpoch)
	ep := epochStart{start: seqOfKey(k), epoch: d.uint()}
	if d.err != nil {
		return epochStart{}, fmt.Errorf("payment: decode epoch: %w", d.err)
	}
	return ep, nil
}

// integrity is what rebuild reads to check the ledger and start a new epoch.
type integrity struct {
	head    head
	hasHead bool
	key     []byte
	epochs  []epochStart
}

// readIntegrity reads the head, the ID key and the epochs.
func readIntegrity(txn *store.Txn) (*integrity, error) {
	in := &integrity{}
	switch v, err := txn.Get(keyHead); {
	case err == nil:
		if in.head, err = decodeHead(v); err != nil {
			return nil, corrupt("key %q: %v", keyHead, err)
		}
		in.hasHead = true
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	switch v, err := txn.Get(keyIDKey); {
	case err == nil:
		if in.key, err = decodeIDKey(v); err != nil {
			return nil, corrupt("key %q: %v", keyIDKey, err)
		}
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	err := txn.Iterate(prefixEpoch, nil, func(k, v []byte) error {
		ep, err := decodeEpoch(k, v)
		if err != nil {
			return corrupt("key %q: %v", k, err)
		}
		in.epochs = append(in.epochs, ep)
		return nil
	})
	return in, err
}

// checkChain walks the commit chunks in sequence order, from the last one
// before sequence number from (from the first when from is 1), and checks
// that each follows the one before: no gap in sequence numbers, the hash
// of the one before. fn, when not nil, is called for every chunk from the
// starting one on. It returns the last chunk (nil for an empty ledger).
func checkChain(txn *store.Txn, from uint64, fn func(c *chunk) error) (*chunk, error) {
	var start []byte
	if from > 1 {
		c, err := chunkAtOrBefore(txn, from-1)
		if err != nil {
			return nil, corrupt("%v", err)
		}
		if c != nil {
			start = keyChunk(c.first)
		}
	}
	var prev *chunk
	err := txn.Iterate(prefixChunk, start, func(k, v []byte) error {
		c, err := decodeChunk(k, v)
		if err != nil {
			return corrupt("%v", err)
		}
		switch {
		case len(c.terminals) == 0:
			return corrupt("commit chunk %d lists no transaction", c.first)
		case prev == nil && start == nil && (c.first != 1 || c.prev != [32]byte{}):
			return corrupt("the first commit chunk starts at sequence number %d, not 1, or does not start the hash chain", c.first)
		case prev != nil && c.first != prev.next():
			return corrupt("transactions %d to %d are missing: commit chunk %d follows chunk %d", prev.next(), c.first-1, c.first, prev.first)
		case prev != nil && c.prev != prev.sum:
			return corrupt("commit chunk %d does not hold the hash of chunk %d before it: one of them was changed", c.first, prev.first)
		}
		prev = c
		if fn != nil {
			return fn(c)
		}
		return nil
	})
	return prev, err
}

// next returns the sequence number after the chunk's last transaction.
func (c *chunk) next() uint64 { return c.first + uint64(len(c.terminals)) }

// checkHead checks the head record against the last chunk and the
// watermark (nil for a database in memory; an empty value for a new or
// restored database). It returns the head to continue from.
func checkHead(in *integrity, last *chunk, mark []byte, wmPath string) (head, error) {
	var tail head
	if last != nil {
		tail.seq, tail.sum = last.next()-1, last.sum
	}
	h := in.head
	switch {
	case !in.hasHead && last != nil:
		return head{}, corrupt("the ledger head (key %q) is missing while the ledger holds %d transactions", keyHead, tail.seq)
	case h.seq != tail.seq || h.sum != tail.sum:
		return head{}, corrupt("the ledger head records transaction %d as the last, but the newest commit chunk ends at %d or holds other data: commits were lost or changed", h.seq, tail.seq)
	}
	if len(mark) == 0 {
		return h, nil
	}
	w, err := decodeHead(mark)
	if err != nil {
		return head{}, corrupt("watermark file %s: %v", wmPath, err)
	}
	switch {
	case h.commits < w.commits:
		return head{}, corrupt("acknowledged commits are missing: the watermark file %s records commit %d (transactions up to %d) as durable, the database ends at commit %d (transactions up to %d); most likely Badger's write-ahead log (a .mem file) was damaged and replayed only up to the damage",
			wmPath, w.commits, w.seq, h.commits, h.seq)
	case h.commits == w.commits && (h.seq != w.seq || h.sum != w.sum):
		return head{}, corrupt("commit %d in the database differs from the one the watermark file %s recorded: the ledger was changed", h.commits, wmPath)
	case h.commits > w.commits+2:
		// The watermark records every commit before its answers go out,
		// at most two commits behind the writer (see marker): more means
		// the file is older than the database.
		return head{}, corrupt("the database holds commit %d but the watermark file %s only %d: the file is older than the database", h.commits, wmPath, w.commits)
	}
	return h, nil
}

// loadMark returns the watermark's value and its file's path; none for a
// database in memory.
func loadMark(wm *store.Watermark) (mark []byte, path string) {
	if wm == nil {
		return nil, ""
	}
	return wm.Load(), wm.Path()
}

// newEpoch draws the epoch for the transactions from start on and returns
// the writes that record it: epochs recorded for sequence numbers from
// start on belong to transactions that are no longer in the ledger, and
// are replaced.
func newEpoch(in *integrity, start uint64) (epochStart, []write, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return epochStart{}, nil, err
	}
	ep := epochStart{start: start, epoch: binary.BigEndian.Uint64(b[:])}
	var ws []write
	kept := in.epochs[:0]
	for _, old := range in.epochs {
		if old.start >= start {
			ws = append(ws, write{key: keyEpoch(old.start), del: true})
			continue
		}
		kept = append(kept, old)
	}
	in.epochs = append(kept, ep)
	ws = append(ws, write{key: keyEpoch(start), value: encodeEpoch(ep.epoch)})
	return ep, ws, nil
}

// chainSum returns the SHA-256 of a chunk's encoded value.
func chainSum(v []byte) [32]byte { return sha256.Sum256(v) }

// writtenCommit is a commit the writer wrote, with the error it got.
type writtenCommit struct {
	c   *commit
	err error
}

// marker records each written commit's ledger head in the watermark file,
// in commit order, then makes the commit durable and releases its
// answers: a start that finds the store behind the watermark knows that
// acknowledged commits were lost. It syncs the watermark while the writer
// writes the next commit, so the extra sync adds latency to a commit but
// little to the commit rate. The writer hands over the next commit only
// once the one before is marked, so the store is at most two commits
// ahead of the watermark.
func (e *Engine) marker(written <-chan writtenCommit, done chan<- struct{}) {
	defer close(done)
	wm := e.db.Watermark()
	for w := range written {
		err := w.err
		if err == nil && w.c.mark != nil && wm != nil {
			if e.opts.markHook != nil {
				e.opts.markHook()
			}
			if e.failed.Load() {
				err = ErrUnavailable
			} else if serr := wm.Store(w.c.mark); serr != nil {
				e.fail(serr)
				e.logger.Error("payment watermark failed; engine stops deciding until reopened", "err", serr)
				err = ErrUnavailable
			}
		}
		if err == nil {
			e.durable.Store(w.c.seq)
		}
		e.release(w.c, err)
	}
}
