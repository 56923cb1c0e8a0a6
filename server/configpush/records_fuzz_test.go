package configpush

import (
	"testing"
	"time"

	"github.com/posfleet/posfleet/internal/recordcheck"
)

// FuzzConfigRecords feeds arbitrary bytes to the decoder of every stored
// config push record: none may panic, what it accepts must round-trip
// unchanged, and bytes without the schema version are refused.
func FuzzConfigRecords(f *testing.F) {
	now := time.Unix(1_800_000_000, 0).UTC()
	header := "hello"
	for _, v := range []any{
		&rolloutRec{Version: 3, Scope: Scope{MerchantID: "M1"}, Settings: &Settings{ReceiptHeader: &header, Extra: map[string]string{"k": "v"}},
			Plan: Plan{StagePercents: []uint32{10, 100}}, StageVersions: []uint64{3}, StageTimes: []time.Time{now}, Created: now, Updated: now,
			Final: &counts{Targeted: 2, FailureRatio: 0.5}},
		&ackRec{Version: 3, Time: now, Detail: "bad"},
		&bindRec{Version: 3, Time: now},
	} {
		b, err := encode(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		recordcheck.RoundTripAny[rolloutRec](t, data, schemaV1, decode, encode)
		recordcheck.RoundTripAny[ackRec](t, data, schemaV1, decode, encode)
		recordcheck.RoundTripAny[bindRec](t, data, schemaV1, decode, encode)
	})
}
