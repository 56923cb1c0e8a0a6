package crash_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

const (
	adminToken = "pfa_crash-test-admin-token-0123456789"
	terminals  = 8
	workers    = 32
	rounds     = 4
	// killAfter is how many approvals a round acknowledges before the kill.
	killAfter = 300
)

// buildBinary builds cmd/posfleet into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "posfleet")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/posfleet/posfleet/cmd/posfleet")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// process is a running posfleet serve.
type process struct {
	cmd  *exec.Cmd
	addr string
	// exited closes when the process has exited; err is Wait's result.
	exited chan struct{}
	err    error
	once   sync.Once
}

var reServing = regexp.MustCompile(`msg=serving addr=(\S+)`)

// start runs the binary on dir and waits until it serves. Per-credential
// quotas are off: these tests drive a few credentials far above a real
// terminal's rate to reach the storage faults they are about.
func start(t *testing.T, bin, dir, tokenFile string) *process {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", dir,
		"--admin-token-file", tokenFile, "--log-level", "info", "--quota-scale", "0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := reServing.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	select {
	case p.addr = <-addrc:
	case <-p.exited:
		t.Fatalf("posfleet exited before serving: %v", p.err)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("posfleet did not start serving within 60s")
	}
	t.Cleanup(func() { p.kill() })
	return p
}

// kill sends SIGKILL and waits for the process to go.
func (p *process) kill() {
	p.once.Do(func() { p.cmd.Process.Signal(syscall.SIGKILL) })
	<-p.exited
}

func dial(t *testing.T, addr, secret string) *client.Client {
	t.Helper()
	c, err := client.Dial(addr, client.WithInsecure(), client.WithBearer(secret), client.WithDefaultTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ack is an approval a terminal was told about.
type ack struct {
	terminal  int
	requestID string
	resp      *pb.AuthorizeResponse
}

func TestAcknowledgedApprovalsSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(adminToken), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	ctx := t.Context()

	// Set up a merchant and registered terminals.
	p := start(t, bin, dataDir, tokenFile)
	admin := dial(t, p.addr, adminToken)
	if _, err := admin.CreateMerchant(ctx, &pb.Merchant{MerchantId: "M1", LegalName: "M1 Ltd", Mcc: "5411", Currency: "NZD"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateStore(ctx, &pb.Store{MerchantId: "M1", StoreId: "S1", Name: "S1"}); err != nil {
		t.Fatal(err)
	}
	type term struct{ id, cred string }
	var terms []term
	for i := range terminals {
		serial := fmt.Sprint("SN-CRASH-", i)
		prov, err := admin.ProvisionTerminal(ctx, serial, "M1", "S1", "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		reg, err := admin.Register(ctx, serial, prov.GetEnrollmentCode(), &pb.DeviceInfo{Model: "crash"})
		if err != nil {
			t.Fatal(err)
		}
		terms = append(terms, term{reg.GetTerminalId(), reg.GetCredential()})
	}

	var (
		mu     sync.Mutex // guards acks and doubt
		acks   []ack
		doubt  []ack // requests without an answer when the server died
		nextID atomic.Int64
	)
	req := func(i int, id string) *pb.AuthorizeRequest {
		return &pb.AuthorizeRequest{
			RequestId:  id,
			MerchantId: "M1",
			Amount:     &pb.Money{MinorUnits: 100 + int64(len(id)), Currency: "NZD"},
			Card:       &pb.Card{Token: "tok_crash_" + id, MaskedPan: "411111******1111", EntryMode: pb.EntryMode_ENTRY_MODE_CHIP},
			Capture:    true,
		}
	}
	for round := range rounds {
		if round > 0 {
			p = start(t, bin, dataDir, tokenFile)
		}
		clients := make([]*client.Client, terminals)
		for i, tm := range terms {
			clients[i] = dial(t, p.addr, tm.cred)
		}
		var acked atomic.Int64
		rctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				i := w % terminals
				for rctx.Err() == nil {
					id := fmt.Sprintf("crash-%d-%d", round, nextID.Add(1))
					resp, err := clients[i].Payment().Authorize(rctx, req(i, id))
					mu.Lock()
					switch {
					case err != nil:
						doubt = append(doubt, ack{terminal: i, requestID: id})
					case resp.GetDecision() == pb.Decision_DECISION_APPROVED:
						acks = append(acks, ack{terminal: i, requestID: id, resp: resp})
						acked.Add(1)
					default:
						t.Errorf("%s: unexpected decline %s", id, resp.GetResponseCode())
					}
					mu.Unlock()
					if err != nil {
						return // the server is gone
					}
				}
			})
		}
		for acked.Load() < killAfter {
			select {
			case <-p.exited:
				t.Fatalf("round %d: posfleet died on its own: %v", round, p.err)
			case <-time.After(time.Millisecond):
			}
		}
		p.kill() // while the workers are still sending
		wg.Wait()
		stop()
		t.Logf("round %d: killed after %d acknowledged approvals", round, acked.Load())
	}

	// Restart once more and check the ledger against what terminals were
	// told.
	p = start(t, bin, dataDir, tokenFile)
	admin = dial(t, p.addr, adminToken)
	if st, err := admin.Health(ctx, ""); err != nil || st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health after restart: %v, %v", st, err)
	}
	ledger := map[string][]*pb.Transaction{} // terminal/request ID → transactions
	for _, tm := range terms {
		token := ""
		for {
			page, err := admin.Admin().ListTransactions(ctx, &pb.ListTransactionsRequest{TerminalId: tm.id, PageSize: 1000, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, tx := range page.GetTransactions() {
				k := tm.id + "/" + tx.GetRequestId()
				ledger[k] = append(ledger[k], tx)
			}
			if token = page.GetNextPageToken(); token == "" {
				break
			}
		}
	}
	for k, txs := range ledger {
		if len(txs) != 1 {
			t.Errorf("request %s decided %d times", k, len(txs))
		}
	}
	clients := make([]*client.Client, terminals)
	for i, tm := range terms {
		clients[i] = dial(t, p.addr, tm.cred)
	}
	for _, a := range acks {
		k := terms[a.terminal].id + "/" + a.requestID
		txs := ledger[k]
		if len(txs) != 1 {
			t.Errorf("acknowledged approval %s: %d transactions in the ledger, want 1", k, len(txs))
			continue
		}
		tx := txs[0]
		if tx.GetTransactionId() != a.resp.GetAuthorizationId() || tx.GetAuthCode() != a.resp.GetAuthCode() ||
			tx.GetDecision() != pb.Decision_DECISION_APPROVED {
			t.Errorf("acknowledged approval %s: ledger has %v, terminal was told %v", k, tx, a.resp)
		}
		again, err := clients[a.terminal].Payment().Authorize(ctx, req(a.terminal, a.requestID))
		if err != nil || !again.GetReplayed() || again.GetAuthorizationId() != a.resp.GetAuthorizationId() {
			t.Errorf("replay of %s: got %v, %v; want the acknowledged answer", k, again, err)
		}
	}
	// Requests in doubt are decided at most once: a retry either replays a
	// decision that was committed before the kill or decides it now.
	var replayed, fresh int
	for _, d := range doubt {
		resp, err := clients[d.terminal].Payment().Authorize(ctx, req(d.terminal, d.requestID))
		if err != nil {
			t.Errorf("retry of %s: %v", d.requestID, err)
			continue
		}
		if resp.GetReplayed() {
			replayed++
		} else {
			fresh++
			if n := len(ledger[terms[d.terminal].id+"/"+d.requestID]); n != 0 {
				t.Errorf("retry of %s decided afresh although the ledger had it", d.requestID)
			}
		}
	}
	// Every batch still balances against the ledger: close each with the
	// totals of its approved transactions.
	for i, tm := range terms {
		var count uint64
		var amount int64
		token := ""
		for {
			page, err := admin.Admin().ListTransactions(ctx, &pb.ListTransactionsRequest{TerminalId: tm.id, Decision: pb.Decision_DECISION_APPROVED, PageSize: 1000, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, tx := range page.GetTransactions() {
				count++
				amount += tx.GetAmount().GetMinorUnits()
			}
			if token = page.GetNextPageToken(); token == "" {
				break
			}
		}
		res, err := clients[i].Payment().CloseBatch(ctx, &pb.CloseBatchRequest{RequestId: "final-close", BatchNumber: 1,
			TerminalTotals: &pb.BatchTotals{SaleCount: count, SaleAmount: &pb.Money{MinorUnits: amount, Currency: "NZD"}}})
		if err != nil || !res.GetInBalance() {
			t.Errorf("terminal %s: close with the ledger's %d sales of %d: got %v, %v; want in balance", tm.id, count, amount, res.GetServerTotals(), err)
		}
	}
	t.Logf("%d acknowledged approvals over %d kills; %d requests in doubt (%d had been committed, %d decided on retry)",
		len(acks), rounds, len(doubt), replayed, fresh)
	if len(acks) < rounds*killAfter {
		t.Errorf("acknowledged approvals: got %d, want at least %d", len(acks), rounds*killAfter)
	}
}
