package powerloss_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/posfleet/posfleet/test/internal/workload"
	"github.com/posfleet/posfleet/test/powerloss/cutfs"
)

const terminals = 8

// defaultCuts is how many cuts a run makes without POSFLEET_POWERLOSS_CUTS.
var defaultCuts = 20

// rig is a posfleet binary with its data directory on a cutfs.
type rig struct {
	t                       *testing.T
	fs                      *cutfs.FS
	bin, dataDir, tokenFile string
	rng                     *rand.Rand
	minDelay, maxDelay      time.Duration
}

// model is the namespace model: Ext4Ordered, or POSIX with
// POSFLEET_POWERLOSS_POSIX=1. Under POSIX the store fails today: Badger
// creates its memtable, value-log and table files without fsyncing their
// directory, which only a journalling file system forgives.
func model() cutfs.Model {
	if os.Getenv("POSFLEET_POWERLOSS_POSIX") == "1" {
		return cutfs.POSIX
	}
	return cutfs.Ext4Ordered
}

func newRig(t *testing.T, tags ...string) *rig {
	if testing.Short() {
		t.Skip("builds the real binary and mounts a FUSE file system")
	}
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	r := &rig{
		t:         t,
		fs:        cutfs.MountForTest(t, mnt, filepath.Join(dir, "backing"), model()),
		dataDir:   filepath.Join(mnt, "data"),
		tokenFile: workload.TokenFile(t, dir),
		rng:       rand.New(rand.NewPCG(workload.Seed(t, "POSFLEET_POWERLOSS_SEED"), 0)),
		minDelay:  50 * time.Millisecond,
		maxDelay:  800 * time.Millisecond,
	}
	r.bin = workload.BuildBinary(t, tags...)
	return r
}

func (r *rig) start() *workload.Process {
	return workload.Start(r.t, r.bin, r.dataDir, r.tokenFile)
}

// cut loads p until a random moment, kills it, drops what was not
// durable and starts the server again.
func (r *rig) cut(h *workload.History, p *workload.Process) (*workload.Process, time.Duration) {
	p, delay, err := r.tryCut(h, p)
	if err != nil {
		r.t.Fatal(err)
	}
	return p, delay
}

// tryCut is cut, returning why the server did not start again.
func (r *rig) tryCut(h *workload.History, p *workload.Process) (*workload.Process, time.Duration, error) {
	delay := h.LoadUntilKilled(r.t, p, r.rng, r.minDelay, r.maxDelay)
	if err := r.fs.Cut(); err != nil {
		r.t.Fatal(err)
	}
	p, err := workload.TryStart(r.t, r.bin, r.dataDir, r.tokenFile)
	return p, delay, err
}

// add sums b into a.
func add(a *workload.Result, b workload.Result) {
	for k, n := range b.Checked {
		a.Checked[k] += n
	}
	for k, n := range b.Lost {
		a.Lost[k] += n
	}
	a.AuditMissing += b.AuditMissing
	a.Doubtful += b.Doubtful
	a.Committed += b.Committed
}

func TestAcknowledgedStateSurvivesPowerLoss(t *testing.T) {
	cuts := defaultCuts
	if s := os.Getenv("POSFLEET_POWERLOSS_CUTS"); s != "" {
		var err error
		if cuts, err = strconv.Atoi(s); err != nil || cuts < 1 {
			t.Fatalf("POSFLEET_POWERLOSS_CUTS=%q: want a positive number", s)
		}
	}
	r := newRig(t)
	ctx := t.Context()
	p := r.start()
	h := &workload.History{}
	h.Setup(ctx, t, p.Addr, terminals)
	total := workload.Result{Checked: map[workload.Kind]int{}, Lost: map[workload.Kind]int{}}
	for i := range cuts {
		from := h.Mark()
		if i == 0 {
			from = workload.Mark{}
		}
		before := h.Len()
		var delay time.Duration
		p, delay = r.cut(h, p)
		res := h.Check(ctx, t, p.Addr, from)
		add(&total, res)
		t.Logf("cut %d at %v: %d acknowledged answers since the last cut checked, %d lost", i, delay, h.Len()-before, res.LostTotal())
		for _, p := range res.Problems {
			t.Errorf("cut %d: %s", i, p)
		}
		if t.Failed() {
			break
		}
	}
	// One more cut, then everything acknowledged since the start.
	p, _ = r.cut(h, p)
	res := h.Check(ctx, t, p.Addr, workload.Mark{})
	for _, p := range res.Problems {
		t.Errorf("final check: %s", p)
	}
	total.Report(t, "after each cut, the answers acknowledged since the cut before:")
	res.Report(t, "after the last cut, every answer acknowledged since the start:")
	st := r.fs.Stats()
	t.Logf("%d cuts dropped %d unsynced writes (%d bytes) and undid %d namespace changes",
		st.Cuts, st.DroppedWrites, st.DroppedBytes, st.UndoneNames)
	for _, k := range workload.Kinds {
		if res.Checked[k] == 0 {
			t.Errorf("no acknowledged %s to check: the workload must cover every kind", k)
		}
	}
}

// TestControlRunWithoutFsyncLosesAcknowledgedState runs the rig on a
// server whose store does not fsync: it must lose acknowledged answers,
// or the rig proves nothing.
func TestControlRunWithoutFsyncLosesAcknowledgedState(t *testing.T) {
	r := newRig(t, "posfleet_unsafe_nosync")
	r.minDelay, r.maxDelay = 500*time.Millisecond, time.Second
	ctx := t.Context()
	p := r.start()
	h := &workload.History{}
	h.Setup(ctx, t, p.Addr, terminals)
	for i := range 3 {
		next, _, err := r.tryCut(h, p)
		if err != nil {
			// Commits without fsync can leave the store unable to open:
			// every acknowledged answer is gone with it.
			t.Logf("control run lost all %d acknowledged answers after %d cuts, as it must: the server cannot start: %v", h.Len(), i+1, err)
			return
		}
		p = next
		res := h.Check(ctx, t, p.Addr, workload.Mark{})
		res.Report(t, "control run without fsync:")
		if n := res.LostTotal(); n > 0 {
			t.Logf("control run lost %d of %d acknowledged answers after %d cuts, as it must", n, h.Len(), i+1)
			return
		}
	}
	t.Errorf("control run without fsync lost nothing in 3 cuts: the rig does not drop unsynced writes")
}
