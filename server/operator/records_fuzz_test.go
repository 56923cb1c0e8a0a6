package operator

import (
	"testing"
	"time"

	"github.com/posfleet/posfleet/internal/recordcheck"
	"github.com/posfleet/posfleet/server/auth"
)

// FuzzTokenRecord feeds arbitrary bytes to the stored token decoder: it
// must not panic, what it accepts must round-trip unchanged, and bytes
// without the schema version are refused.
func FuzzTokenRecord(f *testing.F) {
	r := &rec{Token: Token{ID: "tok1", Name: "ops", Role: auth.RoleOperator, Created: time.Unix(1_800_000_000, 0).UTC()}, Hash: []byte{1, 2, 3}}
	b, err := encodeRec(r)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte(`{"id":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		recordcheck.RoundTripJSON(t, data, schemaV1, func(b []byte, v *rec) error {
			r, err := decodeRec(b)
			if err == nil {
				*v = *r
			}
			return err
		}, encodeRec)
	})
}
