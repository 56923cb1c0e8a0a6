package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Assignment decides which simulated user serves an arrival.
type Assignment int

const (
	// PerUser sends each arrival to a user chosen at random, where it waits
	// in that user's queue while the user is busy: a customer joining one
	// checkout lane. This is the fleet model: at most one transaction in
	// flight per terminal, queueing counted as latency.
	PerUser Assignment = iota
	// Shared puts arrivals in one queue served by whichever user is free: a
	// worker pool, used to drive a trivial call at the machine's ceiling.
	Shared
)

// Config configures a Run. Zero fields take the defaults noted.
type Config struct {
	// Profile is the rate profile to play. Required.
	Profile Profile
	// Arrivals is the arrival process (default Poisson).
	Arrivals ArrivalProcess
	// Seed makes the arrival times and user choices reproducible; zero
	// picks a random seed.
	Seed uint64
	// Users is the number of simulated users (terminals, or workers with
	// Shared), each working on at most one arrival at a time. Required.
	Users int
	// Assignment is PerUser (default) or Shared.
	Assignment Assignment
	// QueueDepth bounds each user's queue (PerUser, default 64) or the
	// shared queue (Shared, default 65536). An arrival finding its queue
	// full is dropped and counted as an error, never silently lost.
	QueueDepth int
	// Shards is the number of recording shards (default GOMAXPROCS).
	Shards int
	// Interval is the period of the progress line and of the interval log
	// (default 1s).
	Interval time.Duration
	// Drain bounds how long queued and in-flight work may run after the
	// last arrival is due before it is cancelled (default 30s).
	Drain time.Duration
	// LagThreshold is the dispatch-lag p99 above which the generator is
	// reported as behind (default 10ms).
	LagThreshold time.Duration
	// Progress receives a progress line per interval; nil for none. The
	// line fits 80 columns and its columns keep their places.
	Progress io.Writer
	// ProgressTTY rewrites one line in place (carriage return, clear to
	// the end of the line) instead of writing a line per interval: for a
	// terminal.
	ProgressTTY bool
	// IntervalLog receives the HdrHistogram interval log (.hlog), one
	// histogram per operation per interval, tagged with the operation name;
	// nil for none.
	IntervalLog io.Writer
	// OnEvent is called in its own goroutine for each profile event at its
	// time; nil ignores events.
	OnEvent func(ctx context.Context, e Event)
	// Info is copied into Result.Info.
	Info map[string]string
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if c.QueueDepth == 0 {
		if c.Assignment == Shared {
			c.QueueDepth = 65536
		} else {
			c.QueueDepth = 64
		}
	}
	if c.Shards == 0 {
		c.Shards = runtime.GOMAXPROCS(0)
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Drain == 0 {
		c.Drain = 30 * time.Second
	}
	if c.LagThreshold == 0 {
		c.LagThreshold = 10 * time.Millisecond
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64() | 1
	}
	return c
}

// Validate reports the first unusable setting.
func (c Config) Validate() error {
	if err := c.Profile.Validate(); err != nil {
		return err
	}
	switch {
	case c.Users <= 0:
		return errors.New("loadgen: Users must be positive")
	case c.Assignment != PerUser && c.Assignment != Shared:
		return fmt.Errorf("loadgen: unknown Assignment %d", c.Assignment)
	case c.Arrivals != Poisson && c.Arrivals != Uniform:
		return fmt.Errorf("loadgen: unknown ArrivalProcess %d", c.Arrivals)
	case c.QueueDepth < 0 || c.Shards < 0 || c.Interval < 0 || c.Drain < 0 || c.LagThreshold < 0:
		return errors.New("loadgen: QueueDepth, Shards, Interval, Drain and LagThreshold must not be negative")
	case c.Interval > 0 && c.Interval < 10*time.Millisecond:
		return errors.New("loadgen: Interval must be at least 10ms")
	}
	return nil
}

// Arrival is one unit of offered load.
type Arrival struct {
	// Seq numbers arrivals from 0 in intended-time order.
	Seq uint64
	// Intended is when the arrival was due; latency is measured from here.
	Intended time.Time
	// Stage is the index of its profile stage.
	Stage int
	// Warmup is true for arrivals in a warm-up stage.
	Warmup bool
}

// Executor carries out arrivals. Execute is called for one user at a time
// (never concurrently for the same user) and must return promptly once ctx
// is done.
type Executor interface {
	// Execute does the work of arrival a as user, records each call it makes
	// with rec, and returns the transaction's outcome.
	Execute(ctx context.Context, user int, a Arrival, rec Recorder) Outcome
}

// ExecutorFunc adapts a function to Executor.
type ExecutorFunc func(ctx context.Context, user int, a Arrival, rec Recorder) Outcome

// Execute calls f.
func (f ExecutorFunc) Execute(ctx context.Context, user int, a Arrival, rec Recorder) Outcome {
	return f(ctx, user, a, rec)
}

// Run is one load-generation run: it owns the recording shards and the
// interval collector. Create it with NewRun, record setup work through
// Recorder, play the profile with Drive, record closing work, then call
// Finish for the Result.
type Run struct {
	cfg    Config
	logger *slog.Logger
	tl     *timeline
	shards []*shard
	hlog   *hdr.HistogramLogWriter
	born   time.Time

	issued    atomic.Int64 // arrivals dispatched
	dropped   atomic.Int64 // arrivals dropped on a full queue or at drain timeout
	inflight  atomic.Int64 // arrivals being executed
	calls     atomic.Int64 // RPCs recorded (every op but OpTxn)
	lagMax    atomic.Int64 // largest dispatch lag in the current interval, ns
	lastDone  atomic.Int64 // latest error-free completion of a measured arrival, unix ns
	stageIss  []atomic.Int64
	drove     atomic.Bool
	interrupt atomic.Bool
	stoppedAt atomic.Int64 // unix ns when an interrupted Drive stopped dispatching
	// progressed is set by the collector once it has written the progress
	// header; read after the collector ends.
	progressed bool

	// dispatchLag is written only by the dispatcher goroutine during Drive
	// and read only after it.
	dispatchLag *hdr.Histogram

	// cpu and calls during Drive, written at its end.
	cpuUser, cpuSys time.Duration
	driveCalls      int64
	driveWall       time.Duration

	stopCollect chan struct{}
	collectDone chan struct{}
	finishOnce  sync.Once
	result      *Result

	mu        sync.Mutex // guards intervals, hlogErr, rollout, cluster and batches
	intervals []intervalRec
	hlogErr   error
	rollout   *RolloutResult
	cluster   *Cluster
	batches   *BatchesResult
}

// intervalRec is an interval as collected, with absolute times.
type intervalRec struct {
	start, end time.Time
	issued     int64
	dropped    int64
	lagMax     time.Duration
	cpu        float64
	ops        map[string]IntervalOp
}

// NewRun validates cfg and starts the interval collector. The logger may be
// nil.
func NewRun(cfg Config, logger *slog.Logger) (*Run, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Run{
		cfg:         cfg,
		logger:      logger,
		tl:          newTimeline(cfg.Profile),
		born:        time.Now(),
		stageIss:    make([]atomic.Int64, len(cfg.Profile.Stages)),
		dispatchLag: newHist(),
		stopCollect: make(chan struct{}),
		collectDone: make(chan struct{}),
	}
	for range cfg.Shards {
		r.shards = append(r.shards, newShard())
	}
	if cfg.IntervalLog != nil {
		r.hlog = hdr.NewHistogramLogWriter(cfg.IntervalLog)
		ms := r.born.UnixMilli()
		// The log's BaseTime line holds whole seconds (hdrhistogram-go
		// writes msec/1000), and readers add it to each interval's
		// relative timestamp. Intervals are therefore written relative to
		// the same whole second, or they read back up to 1 s early.
		base := ms / 1000 * 1000
		r.hlog.SetBaseTime(base)
		r.hlogErr = errors.Join(
			r.hlog.OutputLogFormatVersion(),
			r.hlog.OutputComment("[posfleet loadgen: latency in ns from intended send time; one tag per operation]"),
			r.hlog.OutputStartTime(ms),
			r.hlog.OutputBaseTime(base),
			r.hlog.OutputLegend(),
		)
	}
	go r.collect()
	return r, nil
}

// Recorder returns the recorder for shard i mod Shards. Give concurrent
// callers different i.
func (r *Run) Recorder(i int) Recorder {
	return Recorder{s: r.shards[uint(i)%uint(len(r.shards))], tl: r.tl, calls: &r.calls}
}

// Started reports the profile's start time, zero before Drive.
func (r *Run) Started() time.Time {
	if ns := r.tl.start.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// SetRollout attaches a config propagation measurement to the result.
func (r *Run) SetRollout(rr *RolloutResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rollout = rr
}

// SetCluster attaches the per-node counts of a run against several
// targets; Finish reports them.
func (r *Run) SetCluster(c *Cluster) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cluster = c
}

// SetBatches attaches the account of the fleet's batch closes; Finish
// reports it.
func (r *Run) SetBatches(b *BatchesResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = b
}

// Drive plays the profile: it dispatches arrivals at their intended times,
// open loop (never waiting for responses), to the users' queues, runs exec
// for each, and returns when every arrival is done or dropped. Events fire
// at their offsets. Drive may be called once. It returns ctx.Err() when ctx
// ends first; the measurements so far stay available from Finish.
func (r *Run) Drive(ctx context.Context, exec Executor) error {
	if !r.drove.CompareAndSwap(false, true) {
		return errors.New("loadgen: Drive called twice")
	}
	cfg := r.cfg
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed>>1|1))
	sched := NewSchedule(cfg.Profile, cfg.Arrivals, cfg.Seed)

	nq := cfg.Users
	if cfg.Assignment == Shared {
		nq = 1
	}
	queues := make([]chan Arrival, nq)
	for i := range queues {
		queues[i] = make(chan Arrival, cfg.QueueDepth)
	}
	workCtx, cancelWork := context.WithCancel(ctx)
	defer cancelWork()

	var workers sync.WaitGroup
	for u := range cfg.Users {
		q := queues[0]
		if cfg.Assignment == PerUser {
			q = queues[u]
		}
		workers.Go(func() { r.work(workCtx, u, q, exec) })
	}

	u0, s0 := cpuTimes()
	calls0 := r.calls.Load()
	start := time.Now()
	r.tl.start.Store(start.UnixNano())
	r.logger.Info("profile started", "profile", cfg.Profile.Name, "duration", cfg.Profile.Duration(), "arrivals", cfg.Arrivals.String(), "users", cfg.Users)

	var events sync.WaitGroup
	if cfg.OnEvent != nil {
		for _, e := range cfg.Profile.Events {
			events.Go(func() {
				t := time.NewTimer(time.Until(start.Add(e.At)))
				defer t.Stop()
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				r.logger.Info("profile event", "action", e.Action, "at", e.At)
				cfg.OnEvent(ctx, e)
			})
		}
	}

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var seq uint64
dispatch:
	for {
		at, stage, ok := sched.Next()
		if !ok {
			break
		}
		intended := start.Add(at)
		if d := time.Until(intended); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				timer.Stop()
				break dispatch
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			break dispatch
		}
		warm := cfg.Profile.Stages[stage].Warmup
		lag := time.Since(intended)
		if !warm {
			record(r.dispatchLag, lag.Nanoseconds())
		}
		for {
			cur := r.lagMax.Load()
			if int64(lag) <= cur || r.lagMax.CompareAndSwap(cur, int64(lag)) {
				break
			}
		}
		a := Arrival{Seq: seq, Intended: intended, Stage: stage, Warmup: warm}
		q := queues[0]
		if cfg.Assignment == PerUser {
			q = queues[rng.IntN(len(queues))]
		}
		r.issued.Add(1)
		r.stageIss[stage].Add(1)
		select {
		case q <- a:
		default:
			r.dropped.Add(1)
			r.Recorder(int(seq)).Drop(OpTxn, intended, Dropped("queue_full"))
		}
		seq++
	}
	// The profile lasts its full duration even after its last arrival.
	if d := time.Until(start.Add(cfg.Profile.Duration())); d > 0 && ctx.Err() == nil {
		timer.Reset(d)
		select {
		case <-ctx.Done():
			timer.Stop()
		case <-timer.C:
		}
	}
	stopped := time.Now()
	for _, q := range queues {
		close(q)
	}
	if ctx.Err() != nil {
		r.interrupt.Store(true)
		r.stoppedAt.Store(stopped.UnixNano())
	}

	// Let queued and in-flight work finish, up to Drain past the end.
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	drain := time.NewTimer(time.Until(start.Add(cfg.Profile.Duration() + cfg.Drain)))
	select {
	case <-done:
	case <-drain.C:
		r.logger.Warn("drain time over, cancelling remaining work", "inflight", r.inflight.Load())
		cancelWork()
		<-done
	case <-ctx.Done():
		cancelWork()
		<-done
	}
	drain.Stop()
	events.Wait()

	u1, s1 := cpuTimes()
	r.cpuUser, r.cpuSys = u1-u0, s1-s0
	r.driveCalls = r.calls.Load() - calls0
	r.driveWall = time.Since(start)
	r.logger.Info("profile finished", "issued", r.issued.Load(), "dropped", r.dropped.Load(), "wall", r.driveWall.Round(time.Millisecond))
	return ctx.Err()
}

// work serves one user's arrivals until the queue is closed.
func (r *Run) work(ctx context.Context, user int, q <-chan Arrival, exec Executor) {
	rec := r.Recorder(user)
	for a := range q {
		if ctx.Err() != nil {
			r.dropped.Add(1)
			rec.Drop(OpTxn, a.Intended, Dropped("not_sent"))
			continue
		}
		picked := time.Now()
		r.inflight.Add(1)
		o := exec.Execute(ctx, user, a, rec)
		done := time.Now()
		r.inflight.Add(-1)
		rec.Call(OpTxn, a.Intended, picked, done, o)
		// Only an error-free completion can extend the measured window: a
		// call that hangs until the drain deadline and is cancelled there
		// must not stretch the window (and deflate the achieved rate) by up
		// to the whole drain.
		if !a.Warmup && !o.IsError() {
			for {
				cur := r.lastDone.Load()
				if done.UnixNano() <= cur || r.lastDone.CompareAndSwap(cur, done.UnixNano()) {
					break
				}
			}
		}
	}
}

// collect flushes an interval every Interval until Finish.
func (r *Run) collect() {
	defer close(r.collectDone)
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	last := r.born
	lastIssued, lastDropped := int64(0), int64(0)
	lu, ls := cpuTimes()
	noted := false
	for {
		var now time.Time
		final := false
		select {
		case now = <-t.C:
		case <-r.stopCollect:
			now, final = time.Now(), true
		}
		snap := swapIntervals(r.shards)
		issued, dropped := r.issued.Load(), r.dropped.Load()
		u, s := cpuTimes()
		wall := now.Sub(last)
		iv := intervalRec{
			start:   last,
			end:     now,
			issued:  issued - lastIssued,
			dropped: dropped - lastDropped,
			lagMax:  time.Duration(r.lagMax.Swap(0)),
			ops:     map[string]IntervalOp{},
		}
		if wall > 0 {
			iv.cpu = 100 * float64((u-lu)+(s-ls)) / float64(wall)
		}
		for _, op := range snap.ops() {
			io := snap[op]
			v := io.hist.ValueAtPercentilesSlice([]float64{50, 90, 99})
			iv.ops[op] = IntervalOp{
				Count:  io.hist.TotalCount() + io.drops,
				Errors: io.errors,
				P50:    ms(v[0]),
				P90:    ms(v[1]),
				P99:    ms(v[2]),
				Max:    ms(io.hist.Max()),
			}
		}
		if r.hlog != nil {
			var errs []error
			if st := r.Started(); !st.IsZero() && !noted {
				noted = true
				errs = append(errs, r.hlog.OutputComment(fmt.Sprintf("[profile %s started at %.3f s]", r.cfg.Profile.Name, st.Sub(r.born).Seconds())))
			}
			for _, op := range snap.ops() {
				h := snap[op].hist
				if h.TotalCount() == 0 {
					continue
				}
				h.SetTag(op)
				h.SetStartTimeMs(last.UnixMilli())
				h.SetEndTimeMs(now.UnixMilli())
				errs = append(errs, r.hlog.OutputIntervalHistogram(h))
			}
			if err := errors.Join(errs...); err != nil {
				r.mu.Lock()
				r.hlogErr = errors.Join(r.hlogErr, err)
				r.mu.Unlock()
			}
		}
		r.mu.Lock()
		r.intervals = append(r.intervals, iv)
		r.mu.Unlock()
		if r.cfg.Progress != nil && !final {
			r.printProgress(iv)
		}
		last, lastIssued, lastDropped, lu, ls = now, issued, dropped, u, s
		if final {
			return
		}
	}
}

// printProgress writes the live progress line for one interval, under a
// header written once: in place on a terminal, else as a line of its own.
func (r *Run) printProgress(iv intervalRec) {
	if !r.progressed {
		fmt.Fprintln(r.cfg.Progress, progressHeader)
		r.progressed = true
	}
	line := r.progressLine(iv)
	if r.cfg.ProgressTTY {
		fmt.Fprint(r.cfg.Progress, "\r\x1b[K"+line)
		return
	}
	fmt.Fprintln(r.cfg.Progress, line)
}

// progressWidth is the most characters a progress line takes.
const progressWidth = 79

// progressFormat lays out the progress columns: elapsed/total, stage, target
// and sent rates per second, the main operation's p50 and p99, its errors
// in the interval, and calls in flight; " BEHIND" follows when the
// generator fell behind.
const progressFormat = "%-10.10s %-10.10s %7s %7s %7s %7s %7s %7s"

var progressHeader = fmt.Sprintf(progressFormat, "elapsed", "stage", "tgt/s", "sent/s", "p50", "p99", "errors", "inflight")

// progressLine formats one interval in the columns of progressHeader, in
// at most progressWidth characters.
func (r *Run) progressLine(iv intervalRec) string {
	wall := iv.end.Sub(iv.start).Seconds()
	stage, elapsed := "setup", "-"
	target, sent := 0.0, 0.0
	if wall > 0 {
		sent = float64(iv.issued) / wall
	}
	if st := r.Started(); !st.IsZero() {
		off := iv.end.Sub(st)
		if i, _ := r.cfg.Profile.StageAt(off); i >= 0 && i < len(r.cfg.Profile.Stages) {
			stage = r.cfg.Profile.Stages[i].Name
		} else {
			stage = "drain"
		}
		elapsed = fmt.Sprintf("%.0f/%.0fs", off.Seconds(), r.cfg.Profile.Duration().Seconds())
		if wall > 0 {
			target = r.cfg.Profile.Expected(iv.start.Sub(st), iv.end.Sub(st)) / wall
		}
	}
	p50, p99, errs := "-", "-", "0"
	if ops := progressOps(iv.ops); len(ops) > 0 {
		o := iv.ops[ops[0]]
		p50, p99, errs = fmtMs(o.P50), fmtMs(o.P99), fmt.Sprint(o.Errors)
	}
	line := fmt.Sprintf(progressFormat, elapsed, stage, fmtRate(target), fmtRate(sent), p50, p99, errs, fmt.Sprint(r.inflight.Load()))
	if iv.dropped > 0 || iv.lagMax > r.cfg.LagThreshold {
		line += " BEHIND"
	}
	if len(line) > progressWidth {
		line = line[:progressWidth]
	}
	return line
}

// fmtRate formats a rate per second in at most 7 characters.
func fmtRate(v float64) string {
	if v < 10000 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// progressOps picks at most three operations for the progress line: the
// transaction first, then the busiest.
func progressOps(ops map[string]IntervalOp) []string {
	var names []string
	for n := range ops {
		names = append(names, n)
	}
	sortOps(names, ops)
	if len(names) > 3 {
		names = names[:3]
	}
	return names
}

// Finish stops the collector and returns the result. Call it once the work
// is done; later calls return the same result.
func (r *Run) Finish() *Result {
	r.finishOnce.Do(func() {
		close(r.stopCollect)
		<-r.collectDone
		if r.progressed && r.cfg.ProgressTTY {
			fmt.Fprintln(r.cfg.Progress) // end the line rewritten in place
		}
		r.result = r.build()
	})
	return r.result
}

// IntervalLogErr returns the first error writing the interval log, if any.
func (r *Run) IntervalLogErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hlogErr
}

// interruptedWindow is the measured time of a run whose dispatching stopped
// at offset stop: the sum over the non-warm-up stages of the part of each
// that had elapsed by then.
func interruptedWindow(p Profile, stop time.Duration) time.Duration {
	var d time.Duration
	for i, s := range p.Stages {
		if s.Warmup {
			continue
		}
		d += min(max(stop-p.StageStart(i), 0), s.Duration)
	}
	return d
}
