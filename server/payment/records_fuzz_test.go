package payment

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/posfleet/posfleet/internal/recordcheck"
)

// FuzzPaymentRecords feeds arbitrary bytes to every payment record decoder:
// none may panic, and whatever one accepts must survive an encode/decode
// round trip unchanged.
func FuzzPaymentRecords(f *testing.F) {
	sale := &tx{seq: 7, kind: TxKindSale, terminal: "T0000001", merchant: "M1", store: "S1", requestID: "req-1",
		amount: 1250, currency: "NZD", decision: DecisionApproved, code: "00", authCode: "A1B2C3", maskedPAN: "411111******1111",
		entryMode: 1, tokenHash: 42, batch: 3, date: "2026-12-03", decided: 1e18, localTime: 1e18 - 5,
		reversed: true, reversalReason: 1, reversalTime: 1e18 + 9, reversalRequest: "rev-1", refunded: 100, claimedMerchant: "M1"}
	sale.fp[0] = 9
	en := &entry{entryRec: entryRec{kind: opCloseBatch, created: 5, txSeq: 7, decision: DecisionApproved,
		code: newRespCode("00"), authCode: newApprovalCode("ABC123"), batch: 3, decided: 6, amount: 10, currency: newCurrencyCode("NZD"), status: 1, authSeq: 7}}
	en.close = &CloseBatchResult{BatchNumber: 3, ServerTotals: BatchTotals{Currency: "NZD", SaleCount: 2, SaleAmount: 300}, InBalance: true, NextBatchNumber: 4, CloseTime: time.Unix(0, 7).UTC()}
	b := &batchState{terminal: "T0000001", merchant: "M1", store: "S1", number: 3, state: 1, totals: BatchTotals{Currency: "NZD", SaleCount: 1}, openTime: 1, closeTime: 2, asOf: 7}
	c := &chunk{first: 7, from: 1, to: 2, terminals: []string{"T0000001", "T0000002"}}
	pre := *sale
	pre.kind, pre.captured = TxKindPreauth, 600
	for _, seed := range [][]byte{sale.encode(), pre.encode(), en.encode(), b.encode(), c.encode(), encodeReqIndex(5, 7), encodeIndexedSince(9), encodeTombstone(3, "rev-1"), {}, {schemaV1}} {
		f.Add(seed)
	}
	chunkKey := binary.BigEndian.AppendUint64(append([]byte(nil), prefixChunk...), 7)
	f.Fuzz(func(t *testing.T, data []byte) {
		recordcheck.RoundTrip(t, data, decodeTx, func(v *tx) ([]byte, error) { return v.encode(), nil })
		recordcheck.RoundTrip(t, data, decodeEntry, func(v *entry) ([]byte, error) { return v.encode(), nil })
		recordcheck.RoundTrip(t, data, decodeBatch, func(v *batchState) ([]byte, error) { return v.encode(), nil })
		recordcheck.RoundTrip(t, data,
			func(b []byte) (*chunk, error) { return decodeChunk(chunkKey, b) },
			func(v *chunk) ([]byte, error) { return v.encode(), nil })
		type reqIndex struct {
			created int64
			seq     uint64
		}
		recordcheck.RoundTrip(t, data,
			func(b []byte) (reqIndex, error) { c, s, err := decodeReqIndex(b); return reqIndex{c, s}, err },
			func(v reqIndex) ([]byte, error) { return encodeReqIndex(v.created, v.seq), nil })
		recordcheck.RoundTrip(t, data, decodeIndexedSince, func(v int64) ([]byte, error) { return encodeIndexedSince(v), nil })
		if _, err := decodeTombstone(data); err == nil && (len(data) < 2 || data[0] != schemaV1 || data[1] != recTombstone) {
			t.Errorf("decodeTombstone accepted %q, which is not a tombstone record", data)
		}
		if len(data) < 2 || data[0] != schemaV1 {
			if _, err := decodeTx(data); err == nil {
				t.Errorf("decodeTx accepted %q without the schema version", data)
			}
		}
	})
}
