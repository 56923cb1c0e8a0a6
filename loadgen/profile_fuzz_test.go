package loadgen

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParseProfile feeds arbitrary profile files to ParseProfile: it must
// not panic, and a profile it accepts must be valid, last a positive time,
// and give finite, non-negative rates and expected arrivals everywhere.
func FuzzParseProfile(f *testing.F) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		f.Fatal(err)
	}
	yamls, _ := filepath.Glob("testdata/*.yaml")
	files = append(files, yamls...)
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, filepath.Ext(name) == ".yaml", 10.0)
	}
	f.Fuzz(func(t *testing.T, data []byte, yaml bool, baseRate float64) {
		format := "json"
		if yaml {
			format = "yaml"
		}
		p, err := ParseProfile(data, format, baseRate)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("ParseProfile accepted a profile that does not validate: %v", err)
		}
		total := p.Duration()
		if total <= 0 {
			t.Fatalf("accepted profile lasts %v, want a positive duration", total)
		}
		for _, at := range []time.Duration{0, total / 3, total / 2, total - 1} {
			if r := p.Rate(at); math.IsNaN(r) || math.IsInf(r, 0) || r < 0 {
				t.Fatalf("rate at %v is %v, want finite and not negative", at, r)
			}
		}
		if e := p.Expected(0, total); math.IsNaN(e) || math.IsInf(e, 0) || e < 0 {
			t.Fatalf("expected arrivals over the profile: %v, want finite and not negative", e)
		}
	})
}
