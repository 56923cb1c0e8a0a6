package payment_test

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkDuplicateCheck measures the idempotency lookup of a request ID
// that is not in memory, as after a restart or once more entries are live
// than Options.MaxEntries: new request IDs (the usual case) read the disk
// (two point reads that miss) unless the request filter says they are
// absent; replays read the disk in any case. The store holds 20,000
// entries of 50 terminals.
func BenchmarkDuplicateCheck(b *testing.B) {
	v := benchEnv(b)
	const n, terminals = 20000, 50
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 64 {
				v.authorize(sale(fmt.Sprintf("T%07d", i%terminals+1), fmt.Sprint("old-", i), 100))
			}
		}()
	}
	wg.Wait()
	v.reopenWithClock(time.Now)
	deadline := time.Now().Add(time.Minute)
	for !v.eng.RequestFilterReady() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := v.eng.Close(); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name          string
		prefix        string
		filter, found bool
	}{
		{"new/disk", "new-", false, false},
		{"new/filter", "new-", true, false},
		{"replay/disk", "old-", false, true},
		{"replay/filter", "old-", true, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := i % n
				i++
				found, err := v.eng.CheckRequestID(fmt.Sprintf("T%07d", k%terminals+1), c.prefix+fmt.Sprint(k), c.filter)
				if err != nil {
					b.Fatal(err)
				}
				if found != c.found {
					b.Fatalf("request %s%d: found %v, want %v", c.prefix, k, found, c.found)
				}
			}
		})
	}
}
