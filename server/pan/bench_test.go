package pan_test

import (
	"testing"

	"github.com/posfleet/posfleet/server/pan"
)

// BenchmarkContains measures the detector on typical payment fields.
func BenchmarkContains(b *testing.B) {
	fields := []string{"6f1c1ed1-0955-4884-9833-3b561c09bea6", "tok_5f0c8a7e9b2d4c1a", "411111******1111", "M1", "NZD"}
	b.ReportAllocs()
	for b.Loop() {
		for _, f := range fields {
			if pan.Contains(f) {
				b.Fatal(f)
			}
		}
	}
}
