package payment

import "github.com/posfleet/posfleet/server/store"

// Storage keyspace of the engine (all keys start with "pay/"; integers are
// 8-byte big-endian so that prefix iteration is ordered). An Authorize or
// Refund decision writes its transaction record and a request index key; a
// commit adds one chunk key listing the transactions it created, which
// gives the ledger its global order.
//
//	pay/tx/<terminal>/<seq>        transaction record, the terminal's ledger (rewritten
//	                               when reversed or refunded); holds the request's
//	                               fingerprint and answer, so it is also the idempotency
//	                               record of Authorize and Refund
//	pay/lg/<first seq>             commit chunk: time range and terminal of each
//	                               transaction the commit created, and the hash of
//	                               the chunk before it
//	pay/mt/<merchant>/<terminal>   terminals that transacted for a merchant
//	pay/rq/<terminal>/<request_id> idempotency record of a Reverse or CloseBatch
//	pay/ri/<terminal>/<request_id> request index of an Authorize or Refund: the
//	                               sequence number of the transaction it made, for
//	                               point lookups of entries dropped from memory
//	pay/ri                         the time from which every Authorize and Refund
//	                               has a request index record
//	pay/ts/<terminal>/<request_id> tombstone left by a reversal of an unknown original
//	pay/bo/<terminal>              the terminal's open batch: totals as of a ledger
//	                               sequence number (checkpointed, see batchState)
//	pay/bt/<terminal>/<batch>      a closed batch
//	pay/hd                         the ledger head: commits made, last sequence number,
//	                               hash of the last chunk (see integrity.go)
//	pay/key                        the key of authorization and refund IDs
//	pay/ep/<first seq>             the ID epoch drawn at a start
//	pay/x?/...                     secondary indexes of the ledger (see index.go)
//	pay/ttl                        every idempotency record carries its expiry (see load.go)
//
// Values begin with a schema version byte and a record type byte, followed
// by varint-encoded fields.
var (
	prefixTx        = []byte("pay/tx/")
	prefixChunk     = []byte("pay/lg/")
	prefixMerchTerm = []byte("pay/mt/")
	prefixRequest   = []byte("pay/rq/")
	prefixReqIndex  = []byte("pay/ri/")
	keyIndexedSince = []byte("pay/ri")
	prefixTombstone = []byte("pay/ts/")
	prefixOpenBatch = []byte("pay/bo/")
	prefixBatch     = []byte("pay/bt/")
)

func keyIndex(prefix []byte, parts ...string) []byte {
	n := len(prefix) + 8
	for _, p := range parts {
		n += len(p) + 1
	}
	k := append(make([]byte, 0, n), prefix...)
	for _, p := range parts {
		k = append(k, p...)
		k = append(k, '/')
	}
	return k
}

func keyTx(terminal string, seq uint64) []byte {
	return store.AppendUint64(keyIndex(prefixTx, terminal), seq)
}

func keyChunk(first uint64) []byte {
	return store.AppendUint64(append(make([]byte, 0, len(prefixChunk)+8), prefixChunk...), first)
}

func keyMerchTerm(merchant, terminal string) []byte {
	return append(keyIndex(prefixMerchTerm, merchant), terminal...)
}

func keyRequest(terminal, requestID string) []byte {
	return append(keyIndex(prefixRequest, terminal), requestID...)
}

func keyReqIndex(terminal, requestID string) []byte {
	return append(keyIndex(prefixReqIndex, terminal), requestID...)
}

func keyTombstone(terminal, requestID string) []byte {
	return append(keyIndex(prefixTombstone, terminal), requestID...)
}

func keyOpenBatch(terminal string) []byte {
	return append(append(make([]byte, 0, len(prefixOpenBatch)+len(terminal)), prefixOpenBatch...), terminal...)
}

func keyBatch(terminal string, number uint64) []byte {
	return store.AppendUint64(keyIndex(prefixBatch, terminal), number)
}
