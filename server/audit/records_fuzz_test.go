package audit

import (
	"testing"
	"time"

	"github.com/posfleet/posfleet/internal/recordcheck"
)

// FuzzEventRecord feeds arbitrary bytes to the stored audit event decoder:
// it must not panic, what it accepts must round-trip unchanged, and bytes
// without the schema version are refused.
func FuzzEventRecord(f *testing.F) {
	b, err := encode(&Event{Type: MerchantMismatch, Time: time.Unix(1_800_000_000, 5).UTC(), Actor: "admin", TerminalID: "T0000001",
		MerchantID: "M1", Message: "claimed M2", Attributes: map[string]string{"claimed": "M2"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte(`{"t":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		recordcheck.RoundTripJSON(t, data, schemaV1, decode, encode)
	})
}
