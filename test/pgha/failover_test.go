package pgha

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/posfleet/posfleet/internal/pgtest/autofailover"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/test/internal/workload"
)

// TestPrimaryKilledUnderLoad runs the real posfleet binary on a
// pg_auto_failover formation, drives every kind of change through it,
// kills the primary (keeper and PostgreSQL, SIGKILL) under that load, and
// checks that the secondary takes over, that the same posfleet process
// serves payments again without a restart, and that every answer it
// acknowledged before, during and after the failover is on the new
// primary, none twice. A probe terminal measures how long payments were
// refused.
func TestPrimaryKilledUnderLoad(t *testing.T) {
	f := autofailover.Start(t)
	ctx := t.Context()
	if names, err := f.SynchronousStandbys(ctx); err != nil || names == "" {
		t.Fatalf("primary's synchronous_standby_names: got %q, %v; want the secondary (synchronous replication)", names, err)
	}
	if uri, err := f.ShowURI(ctx); err != nil || !strings.Contains(uri, "target_session_attrs=read-write") {
		t.Errorf("pg_autoctl show uri: got %q, %v; want a multi-host URL with target_session_attrs=read-write", uri, err)
	}

	bin := workload.BuildBinary(t)
	dir := t.TempDir()
	t.Setenv("POSFLEET_STORE", "postgres")
	t.Setenv("POSFLEET_DATABASE_URL", f.URL())
	p := workload.Start(t, bin, dir, workload.TokenFile(t, dir))
	var h workload.History
	h.Setup(ctx, t, p.Addr, 4)
	probe := startProbe(ctx, t, p.Addr, h.Terms[0].Cred)

	// Load, then the primary dies under it: the load stops at the first
	// Unavailable, as a terminal would stop to retry.
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	loaded := make(chan struct{})
	go func() { defer close(loaded); h.Load(lctx, t, p.Addr, 1) }()
	time.Sleep(2 * time.Second)
	before := h.Len()
	old := f.KillPrimary(t)
	killedAt := time.Now()
	<-loaded
	cancel()
	next := f.WaitPrimary(t, 60*time.Second)
	if next == old {
		t.Fatalf("primary after the failover: got %s, the killed node", next.Name)
	}
	t.Logf("%d answers acknowledged before the kill; %s promoted %v after it", before, next.Name, time.Since(killedAt).Round(100*time.Millisecond))

	// The same process pays again once the new primary answers.
	down := probe.waitRecovered(t, 60*time.Second)
	t.Logf("payments refused (Unavailable) for %v", down.Round(100*time.Millisecond))
	select {
	case <-p.Exited():
		t.Fatalf("posfleet exited during the failover: %v", p.Err())
	default:
	}
	mark := h.Len()
	lctx, cancel = context.WithTimeout(ctx, 3*time.Second)
	h.Load(lctx, t, p.Addr, 2)
	cancel()
	if h.Len() == mark {
		t.Error("no answer acknowledged after the failover: posfleet did not recover")
	}
	probe.stop()

	res := h.Check(ctx, t, p.Addr, workload.Mark{})
	res.Report(t, "after the failover")
	if n := res.LostTotal(); n > 0 || len(res.Problems) > 0 {
		t.Errorf("acknowledged answers lost: %d; problems: %v", n, res.Problems)
	}
	probe.check(ctx, t)
}

// probe pays with one terminal every 50 ms, retrying a refused request
// with the same request ID, and records its approvals and the longest time
// between a first refusal and the next answer.
type probe struct {
	cancel context.CancelFunc
	done   chan struct{}
	pay    pb.PaymentServiceClient

	mu        sync.Mutex        // guards the fields below
	approved  map[string]string // request ID → authorization ID
	downSince time.Time         // zero while answering
	down      time.Duration     // the longest refusal
	recovered bool              // an answer came after a refusal
	err       error             // an unexpected failure
}

func startProbe(ctx context.Context, t *testing.T, addr, cred string) *probe {
	ctx, cancel := context.WithCancel(ctx)
	pr := &probe{cancel: cancel, done: make(chan struct{}), pay: workload.Dial(t, addr, cred).Payment(), approved: map[string]string{}}
	go pr.run(ctx)
	t.Cleanup(pr.stop)
	return pr
}

func saleRequest(id string) *pb.AuthorizeRequest {
	return &pb.AuthorizeRequest{
		RequestId: id, MerchantId: "M1",
		Amount:    &pb.Money{MinorUnits: 250, Currency: "NZD"},
		Card:      &pb.Card{Token: "tok_probe_" + id, MaskedPan: "411111******1111", EntryMode: pb.EntryMode_ENTRY_MODE_CHIP},
		LocalTime: timestamppb.Now(), Capture: true,
	}
}

func (pr *probe) run(ctx context.Context) {
	defer close(pr.done)
	for n := 0; ctx.Err() == nil; {
		id := fmt.Sprintf("probe-%d", n)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := pr.pay.Authorize(cctx, saleRequest(id))
		cancel()
		pr.mu.Lock()
		switch {
		case err == nil:
			pr.approved[id] = resp.GetAuthorizationId()
			if !pr.downSince.IsZero() {
				pr.down = max(pr.down, time.Since(pr.downSince))
				pr.downSince, pr.recovered = time.Time{}, true
			}
			n++
		case ctx.Err() != nil:
		case status.Code(err) == codes.Unavailable || status.Code(err) == codes.DeadlineExceeded:
			if pr.downSince.IsZero() {
				pr.downSince = time.Now()
			}
		default:
			pr.err = fmt.Errorf("authorize %s: %w", id, err)
		}
		pr.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitRecovered waits until the probe was refused and then answered again,
// and returns how long it was refused.
func (pr *probe) waitRecovered(t *testing.T, timeout time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pr.mu.Lock()
		rec, down, err := pr.recovered, pr.down, pr.err
		pr.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if rec {
			return down
		}
		if time.Now().After(deadline) {
			t.Fatalf("posfleet did not approve a payment again within %v of the failover", timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (pr *probe) stop() {
	pr.cancel()
	<-pr.done
}

// check replays every probe approval: each comes back as a replay of the
// same authorization, from the new primary.
func (pr *probe) check(ctx context.Context, t *testing.T) {
	t.Helper()
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.err != nil {
		t.Error(pr.err)
	}
	for id, auth := range pr.approved {
		resp, err := pr.pay.Authorize(ctx, saleRequest(id))
		if err != nil || !resp.GetReplayed() || resp.GetAuthorizationId() != auth {
			t.Errorf("replay of probe payment %s: got %v, %v; want %s replayed", id, resp, err, auth)
		}
	}
	t.Logf("%d probe approvals replayed", len(pr.approved))
}
