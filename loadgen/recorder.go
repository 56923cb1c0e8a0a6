package loadgen

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram geometry: values are nanoseconds, from 1µs to 5 minutes, with
// three significant digits. Longer values are clamped to the maximum and
// counted in Result.Generator.Clamped.
const (
	histLowest  = int64(time.Microsecond)
	histHighest = int64(5 * time.Minute)
	histDigits  = 3
)

func newHist() *hdr.Histogram { return hdr.New(histLowest, histHighest, histDigits) }

// Operation names recorded by the generator's own drivers.
const (
	// OpTxn is one arrival from intended time to the end of the work it
	// triggered (one or more RPCs), including any wait in its terminal's
	// queue. Its target rate is the profile's rate.
	OpTxn = "txn"
	// OpHealth is a grpc.health.v1.Health/Check call.
	OpHealth = "health"
)

// latKey identifies a latency histogram: an operation, a stage and an
// outcome.
type latKey struct {
	op      string
	stage   int
	outcome Outcome
}

// intervalOp accumulates one operation's calls for the current interval.
type intervalOp struct {
	hist   *hdr.Histogram
	errors int64
	drops  int64
}

// shard is one recording worker's histogram set. Histograms are not safe for
// concurrent use, so each shard has its own and the results are merged at the
// end; callers are spread over shards so that the lock is rarely contended.
type shard struct {
	mu sync.Mutex // guards every field below
	// lat holds latency (intended time to done) by op, stage and outcome.
	lat map[latKey]*hdr.Histogram
	// svc holds service time (sent to done) by op, warm-up excluded.
	svc map[string]*hdr.Histogram
	// lag holds send-lag (intended time to sent) by op, warm-up excluded.
	lag map[string]*hdr.Histogram
	// drops counts untimed outcomes (dropped work) by op, stage and outcome.
	drops map[latKey]int64
	// ival holds the current interval's latency by op, warm-up included.
	ival map[string]*intervalOp
	// clamped counts values beyond the histogram range.
	clamped int64
}

func newShard() *shard {
	return &shard{
		lat:   map[latKey]*hdr.Histogram{},
		svc:   map[string]*hdr.Histogram{},
		lag:   map[string]*hdr.Histogram{},
		drops: map[latKey]int64{},
		ival:  map[string]*intervalOp{},
	}
}

func histFor[K comparable](m map[K]*hdr.Histogram, k K) *hdr.Histogram {
	h := m[k]
	if h == nil {
		h = newHist()
		m[k] = h
	}
	return h
}

// record adds v nanoseconds to h, clamping into range; it reports whether
// the value was clamped from above.
func record(h *hdr.Histogram, v int64) bool {
	clamped := false
	if v < histLowest {
		v = histLowest
	}
	if v > histHighest {
		v, clamped = histHighest, true
	}
	_ = h.RecordValue(v) // in range by construction
	return clamped
}

func (s *shard) ivalOp(op string) *intervalOp {
	io := s.ival[op]
	if io == nil {
		io = &intervalOp{hist: newHist()}
		s.ival[op] = io
	}
	return io
}

// timeline maps intended times to recorder stages: stage 0 is setup (before
// the profile starts), stages 1..n are the profile's, stage n+1 is close
// (after the profile ends).
type timeline struct {
	profile Profile
	start   atomic.Int64 // unix nanoseconds of the profile start; 0 before
	names   []string
	warmup  []bool
}

func newTimeline(p Profile) *timeline {
	t := &timeline{profile: p}
	t.names = append(t.names, "setup")
	t.warmup = append(t.warmup, false)
	for _, s := range p.Stages {
		t.names = append(t.names, s.Name)
		t.warmup = append(t.warmup, s.Warmup)
	}
	t.names = append(t.names, "close")
	t.warmup = append(t.warmup, false)
	return t
}

// stageOf returns the recorder stage of an intended time.
func (t *timeline) stageOf(at time.Time) int {
	start := t.start.Load()
	if start == 0 {
		return 0
	}
	i, _ := t.profile.StageAt(at.Sub(time.Unix(0, start)))
	if i < 0 {
		return 0
	}
	return i + 1
}

// Recorder records calls into one shard of a run's histograms. It is a small
// value, safe for concurrent use; spread concurrent callers over the
// recorders a Run hands out (Run.Recorder) to keep lock contention low.
type Recorder struct {
	s     *shard
	tl    *timeline
	calls *atomic.Int64 // RPCs recorded, for the generator's CPU per call
}

// Call records one call of op that was intended at intended, actually sent
// at sent and answered at done. Latency is done − intended (so waiting for
// a busy terminal or a late generator counts), service time is done − sent,
// send-lag is sent − intended.
func (r Recorder) Call(op string, intended, sent, done time.Time, o Outcome) {
	stage := r.tl.stageOf(intended)
	warm := r.tl.warmup[stage]
	lat := done.Sub(intended).Nanoseconds()
	if op != OpTxn {
		r.calls.Add(1)
	}
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	c := record(histFor(r.s.lat, latKey{op, stage, o}), lat)
	if !warm {
		record(histFor(r.s.svc, op), done.Sub(sent).Nanoseconds())
		record(histFor(r.s.lag, op), sent.Sub(intended).Nanoseconds())
	}
	io := r.s.ivalOp(op)
	record(io.hist, lat)
	if o.IsError() {
		io.errors++
	}
	if c {
		r.s.clamped++
	}
}

// Drop records work for op intended at intended that was never sent.
func (r Recorder) Drop(op string, intended time.Time, o Outcome) {
	stage := r.tl.stageOf(intended)
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.s.drops[latKey{op, stage, o}]++
	io := r.s.ivalOp(op)
	io.errors++
	io.drops++
}

// recordings is the merge of every shard.
type recordings struct {
	lat     map[latKey]*hdr.Histogram
	svc     map[string]*hdr.Histogram
	lag     map[string]*hdr.Histogram
	drops   map[latKey]int64
	clamped int64
}

// mergeShards merges the shards' histograms into one set.
func mergeShards(shards []*shard) *recordings {
	m := &recordings{
		lat:   map[latKey]*hdr.Histogram{},
		svc:   map[string]*hdr.Histogram{},
		lag:   map[string]*hdr.Histogram{},
		drops: map[latKey]int64{},
	}
	for _, s := range shards {
		s.mu.Lock()
		for k, h := range s.lat {
			histFor(m.lat, k).Merge(h)
		}
		for k, h := range s.svc {
			histFor(m.svc, k).Merge(h)
		}
		for k, h := range s.lag {
			histFor(m.lag, k).Merge(h)
		}
		for k, n := range s.drops {
			m.drops[k] += n
		}
		m.clamped += s.clamped
		s.mu.Unlock()
	}
	return m
}

// intervalSnapshot is one interval's merged latency per op.
type intervalSnapshot map[string]*intervalOp

// swapIntervals takes the current interval's recordings out of every shard
// and merges them.
func swapIntervals(shards []*shard) intervalSnapshot {
	out := intervalSnapshot{}
	for _, s := range shards {
		s.mu.Lock()
		for op, io := range s.ival {
			if io.hist.TotalCount() == 0 && io.drops == 0 {
				continue
			}
			dst := out[op]
			if dst == nil {
				dst = &intervalOp{hist: newHist()}
				out[op] = dst
			}
			dst.hist.Merge(io.hist)
			dst.errors += io.errors
			dst.drops += io.drops
			io.hist.Reset()
			io.errors, io.drops = 0, 0
		}
		s.mu.Unlock()
	}
	return out
}

// ops returns the snapshot's operations in name order.
func (s intervalSnapshot) ops() []string {
	out := make([]string, 0, len(s))
	for op := range s {
		out = append(out, op)
	}
	sort.Strings(out)
	return out
}
