package crash_test

import (
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/posfleet/posfleet/test/internal/workload"
)

const (
	terminals = 8
	rounds    = 5
)

func TestAcknowledgedStateSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	seed := workload.Seed(t, "POSFLEET_CRASH_SEED")
	rng := rand.New(rand.NewPCG(seed, 0))
	bin := workload.BuildBinary(t)
	dir := t.TempDir()
	tokenFile := workload.TokenFile(t, dir)
	dataDir := filepath.Join(dir, "data")
	ctx := t.Context()

	p := workload.Start(t, bin, dataDir, tokenFile)
	h := &workload.History{}
	h.Setup(ctx, t, p.Addr, terminals)
	for round := range rounds {
		if round > 0 {
			p = workload.Start(t, bin, dataDir, tokenFile)
		}
		before := h.Len()
		delay := h.LoadUntilKilled(t, p, rng, 100*time.Millisecond, 1500*time.Millisecond)
		t.Logf("round %d: killed %v into the load, after %d acknowledged answers", round, delay, h.Len()-before)
	}

	// Restart once more and check everything the server ever acknowledged.
	p = workload.Start(t, bin, dataDir, tokenFile)
	admin := workload.Dial(t, p.Addr, workload.AdminToken)
	if st, err := admin.Health(ctx, ""); err != nil || st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health after restart: %v, %v", st, err)
	}
	res := h.Check(ctx, t, p.Addr, workload.Mark{})
	res.Report(t, "after the last kill:")
	for _, p := range res.Problems {
		t.Error(p)
	}
	for _, k := range workload.Kinds {
		if res.Checked[k] == 0 {
			t.Errorf("no acknowledged %s to check: the workload must cover every kind", k)
		}
	}
}
