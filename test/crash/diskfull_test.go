package crash_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/test/internal/workload"
)

// tmpfsSize is the size of the filesystem the disk-full test fills.
const tmpfsSize = 64 << 20

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts it
// when the test ends. It needs root: without it the test is skipped, or
// fails under CI=true, where a missing component must not pass unnoticed.
// workers is how many goroutines fill the disk with Authorize calls.
const workers = 32

func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the disk-full test mounts a tmpfs and needs root; CI runs as root")
		}
		t.Skip("the disk-full test mounts a tmpfs and needs root (CI runs it)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// reason returns the ErrorInfo reason of a status error, or "".
func reason(err error) string {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

func isDiskLow(err error) bool {
	return status.Code(err) == codes.Unavailable && reason(err) == "DISK_LOW"
}

// TestDiskFullRefusesAndResumes runs the real binary on a 64 MiB tmpfs,
// fills it with authorizations until writes are refused, and checks that
// the process stays up, that refusals are Unavailable DISK_LOW, that reads
// work and health is NOT_SERVING, that writes resume by themselves when
// space is freed, and that every acknowledged approval replays after a
// SIGKILL and restart.
func TestDiskFullRefusesAndResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the real binary and fills a tmpfs")
	}
	mnt := mountTmpfs(t, tmpfsSize)
	bin := workload.BuildBinary(t)
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokenFile, []byte(workload.AdminToken), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(mnt, "data")
	const reserve = 40 << 20
	t.Setenv("POSFLEET_DISK_RESERVE", "40MiB")
	ctx := t.Context()

	p := workload.Start(t, bin, dataDir, tokenFile)
	admin := workload.Dial(t, p.Addr, workload.AdminToken)
	if _, err := admin.CreateMerchant(ctx, &pb.Merchant{MerchantId: "M1", LegalName: "M1 Ltd", Mcc: "5411", Currency: "NZD"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateStore(ctx, &pb.Store{MerchantId: "M1", StoreId: "S1", Name: "S1"}); err != nil {
		t.Fatal(err)
	}
	type term struct {
		id, cred string
		c        *client.Client
	}
	var terms []term
	for i := range terminals {
		serial := fmt.Sprint("SN-FULL-", i)
		prov, err := admin.ProvisionTerminal(ctx, serial, "M1", "S1", "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		reg, err := admin.Register(ctx, serial, prov.GetEnrollmentCode(), &pb.DeviceInfo{Model: "full"})
		if err != nil {
			t.Fatal(err)
		}
		terms = append(terms, term{reg.GetTerminalId(), reg.GetCredential(), workload.Dial(t, p.Addr, reg.GetCredential())})
	}

	// Leave 2 MiB above the reserve: a few thousand authorizations fill it.
	filler := filepath.Join(mnt, "filler")
	fillerSize := freeBytes(t, mnt) - reserve - 2<<20
	if fillerSize <= 0 {
		t.Fatalf("only %d bytes free on the tmpfs after start, want more than %d", freeBytes(t, mnt), reserve+2<<20)
	}
	if err := os.WriteFile(filler, make([]byte, fillerSize), 0o600); err != nil {
		t.Fatalf("filler of %d bytes: %v", fillerSize, err)
	}

	req := func(id string) *pb.AuthorizeRequest {
		return &pb.AuthorizeRequest{
			RequestId:  id,
			MerchantId: "M1",
			Amount:     &pb.Money{MinorUnits: 100, Currency: "NZD"},
			Card:       &pb.Card{Token: "tok_full_" + id, MaskedPan: "411111******1111", EntryMode: pb.EntryMode_ENTRY_MODE_CHIP},
			Capture:    true,
		}
	}
	type ackd struct {
		term int
		id   string
		auth string
	}
	var (
		mu      sync.Mutex // guards acks, other
		acks    []ackd
		other   []error // errors other than DISK_LOW
		nextID  atomic.Int64
		refused atomic.Int64
	)
	// drive authorizes from every terminal until n refusals were seen (or
	// the deadline passes).
	drive := func(round string, n int64, deadline time.Duration) {
		rctx, cancel := context.WithTimeout(ctx, deadline)
		defer cancel()
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				i := w % len(terms)
				for rctx.Err() == nil && refused.Load() < n {
					id := fmt.Sprintf("full-%s-%d", round, nextID.Add(1))
					resp, err := terms[i].c.Payment().Authorize(rctx, req(id))
					mu.Lock()
					switch {
					case err == nil && resp.GetDecision() == pb.Decision_DECISION_APPROVED:
						acks = append(acks, ackd{i, id, resp.GetAuthorizationId()})
					case isDiskLow(err):
						refused.Add(1)
					case err != nil && rctx.Err() == nil:
						other = append(other, fmt.Errorf("%s: %w", id, err))
					}
					mu.Unlock()
					select {
					case <-p.Exited():
						return // it died: reported below
					default:
					}
				}
			})
		}
		wg.Wait()
	}
	begin := time.Now()
	drive("fill", 200, 3*time.Minute)
	select {
	case <-p.Exited():
		t.Fatalf("posfleet died while the disk filled, after %d approvals: %v", len(acks), p.Err())
	default:
	}
	if refused.Load() < 200 {
		t.Fatalf("after %v and %d approvals: %d DISK_LOW refusals, want 200", time.Since(begin), len(acks), refused.Load())
	}
	t.Logf("filled: %d approvals in %v before writes were refused; %d bytes free", len(acks), time.Since(begin).Round(time.Millisecond), freeBytes(t, mnt))
	for _, err := range other {
		t.Errorf("unexpected error while filling: %v", err)
	}

	// Refused, but alive and readable.
	select {
	case <-p.Exited():
		t.Fatalf("posfleet died while the disk was low: %v", p.Err())
	default:
	}
	if _, err := admin.CreateMerchant(ctx, &pb.Merchant{MerchantId: "M2", LegalName: "M2 Ltd", Mcc: "5411", Currency: "NZD"}); !isDiskLow(err) {
		t.Errorf("CreateMerchant while low: got %v, want Unavailable DISK_LOW", err)
	}
	for _, svc := range []string{"", pb.PaymentService_ServiceDesc.ServiceName} {
		if st, err := admin.Health(ctx, svc); err != nil || st != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("health %q while low: got %v, %v; want NOT_SERVING", svc, st, err)
		}
	}
	if m, err := admin.GetMerchant(ctx, "M1"); err != nil || m.GetMerchantId() != "M1" {
		t.Errorf("GetMerchant while low: got %v, %v", m, err)
	}
	if page, err := admin.Admin().ListTransactions(ctx, &pb.ListTransactionsRequest{TerminalId: terms[0].id, PageSize: 10}); err != nil || len(page.GetTransactions()) == 0 {
		t.Errorf("ListTransactions while low: got %d, %v; want transactions", len(page.GetTransactions()), err)
	}

	// Free the space: writes resume by themselves.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	for {
		st, err := admin.Health(ctx, "")
		if err == nil && st == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Since(resumed) > 10*time.Second {
			t.Fatalf("health 10s after space was freed: got %v, %v; want SERVING", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("writes resumed %v after the filler was deleted", time.Since(resumed).Round(time.Millisecond))
	if _, err := admin.CreateMerchant(ctx, &pb.Merchant{MerchantId: "M2", LegalName: "M2 Ltd", Mcc: "5411", Currency: "NZD"}); err != nil {
		t.Errorf("CreateMerchant after space returned: %v", err)
	}
	before := len(acks)
	refused.Store(0)
	drive("resumed", 1, 2*time.Second)
	if len(acks) == before || refused.Load() != 0 {
		t.Errorf("after space returned: %d more approvals, %d refusals; want approvals only", len(acks)-before, refused.Load())
	}

	// Nothing acknowledged is lost: kill, restart, replay every approval.
	p.Kill()
	p = workload.Start(t, bin, dataDir, tokenFile)
	for i := range terms {
		terms[i].c = workload.Dial(t, p.Addr, terms[i].cred)
	}
	var wg sync.WaitGroup
	var lost atomic.Int64
	for w := range workers {
		wg.Go(func() {
			for k := w; k < len(acks); k += workers {
				a := acks[k]
				resp, err := terms[a.term].c.Payment().Authorize(ctx, req(a.id))
				if err != nil || !resp.GetReplayed() || resp.GetAuthorizationId() != a.auth {
					if lost.Add(1) <= 10 {
						t.Errorf("acknowledged %s after restart: got %v, %v; want %s replayed", a.id, resp, err, a.auth)
					}
				}
			}
		})
	}
	wg.Wait()
	if n := lost.Load(); n > 0 {
		t.Errorf("%d of %d acknowledged approvals did not replay after restart", n, len(acks))
	}
}
