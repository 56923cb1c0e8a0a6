package loadgen_test

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/posfleet/posfleet/loadgen"
)

func TestShardedRecordingMergesExactly(t *testing.T) {
	// Values recorded concurrently into several shards must merge into the
	// same distribution as one histogram fed every value.
	const workers, perWorker = 6, 5000
	run, err := loadgen.NewRun(loadgen.Config{Profile: steady(1, time.Second), Users: 1, Shards: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref := hdr.New(int64(time.Microsecond), int64(5*time.Minute), 3)
	values := make([][]time.Duration, workers)
	for w := range workers {
		rng := rand.New(rand.NewPCG(uint64(w), 1))
		for range perWorker {
			// Log-uniform between 10µs and 2s, plus a few errors.
			d := time.Duration(float64(10*time.Microsecond) * math.Pow(2e5, rng.Float64()))
			values[w] = append(values[w], d)
			if err := ref.RecordValue(int64(d)); err != nil {
				t.Fatal(err)
			}
		}
	}
	base := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rec := run.Recorder(w)
			for i, d := range values[w] {
				o := loadgen.OK()
				if i%100 == 0 {
					o = loadgen.Outcome{Class: loadgen.ClassError, Code: "Unavailable"}
				}
				rec.Call("op", base, base, base.Add(d), o)
			}
		})
	}
	wg.Wait()
	res := run.Finish()
	op := res.Op("op")
	if op == nil {
		t.Fatal("no op recorded")
	}
	if got, want := op.Count, int64(workers*perWorker); got != want {
		t.Fatalf("count: got %d, want %d", got, want)
	}
	if got, want := op.Errors, int64(workers*perWorker/100); got != want {
		t.Errorf("errors: got %d, want %d", got, want)
	}
	for _, tt := range []struct {
		name string
		got  float64
		p    float64
	}{{"p50", op.Latency.P50, 50}, {"p90", op.Latency.P90, 90}, {"p99", op.Latency.P99, 99}, {"p99.9", op.Latency.P999, 99.9}, {"max", op.Latency.Max, 100}} {
		want := float64(ref.ValueAtPercentile(tt.p)) / 1e6
		if tt.p == 100 {
			want = float64(ref.Max()) / 1e6
		}
		if tt.got != want {
			t.Errorf("%s: got %vms, want %vms", tt.name, tt.got, want)
		}
	}
	var sum int64
	for _, o := range op.Outcomes {
		sum += o.Count
	}
	if sum != op.Count {
		t.Errorf("outcome counts sum to %d, want %d", sum, op.Count)
	}
}
