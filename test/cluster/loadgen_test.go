package cluster_test

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posfleet/posfleet/client"
	"github.com/posfleet/posfleet/internal/pgtest"
	"github.com/posfleet/posfleet/loadgen"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/payment"
	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/test/internal/workload"
)

// The load generator's run in TestLoadgenFleetAcrossTakeover: a small fleet
// at a rate a loaded two-core machine keeps up with, long enough that the
// terminals pay for some seconds after the takeover.
const (
	lgTerminals = 12
	lgMerchants = 2
	lgRate      = "20"
	lgDuration  = "8s"
	lgRunID     = "CL"
)

// TestLoadgenFleetAcrossTakeover runs `posfleet loadgen` (the fleet model:
// sales, declines, reversals, refunds, heartbeats, config watches, every
// batch closed at the end) against three nodes on one database and kills
// the active node with SIGKILL a second into the profile. A standby takes
// over; the load generator carries on through it and finishes; every batch
// closes in balance; and the ledger, read back from the node that took
// over and then verified whole with every node stopped, holds exactly what
// the terminals counted:
//
//   - the sales (net of reversals), refunds and reversals of the run's
//     transactions equal the sums of the terminals' own totals of their
//     balanced batches, to the unit;
//   - the approvals in the ledger are the approvals the terminals were told
//     of plus those whose answer was lost (the node died between commit and
//     answer, and every retry then failed) and which the SDK reversed with
//     reason TIMEOUT: so the ledger's TIMEOUT reversals are exactly those,
//     and there can be no more of them than failed authorizations;
//   - approvals the terminals were told of were decided after the kill, by
//     the node that took over.
//
// Each holds whatever the kill's moment and the mix's draws: a lost
// answer is absorbed by a retry (a replay) or by the TIMEOUT reversal,
// both counted by the terminals.
func TestLoadgenFleetAcrossTakeover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the real binary and runs three nodes and the load generator on PostgreSQL")
	}
	url := pgtest.NewDatabase(t)
	bin := workload.BuildBinary(t)
	tokenFile := workload.TokenFile(t, t.TempDir())
	ctx := t.Context()

	a, b, c := startThree(t, bin, url, tokenFile)
	targets := []string{a.addr, b.addr, c.addr}

	seed := workload.Seed(t, "POSFLEET_CLUSTER_SEED")
	report := filepath.Join(t.TempDir(), "report")
	lctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	// --attempts 8: a payment call cut off by the kill (an authorization,
	// a reversal, a refund, a batch close) is retried past a takeover slowed
	// by a loaded machine (a standby's refusal asks for 1 s before the next
	// try) rather than given up with its outcome unknown to the terminal.
	lg := exec.CommandContext(lctx, bin, "loadgen", "--target", strings.Join(targets, ","), "--admin-token-file", tokenFile,
		"--driver", "fleet", "--profile", "steady", "--rate", lgRate, "--duration", lgDuration, "--warmup", "0",
		"--terminals", strconv.Itoa(lgTerminals), "--merchants", strconv.Itoa(lgMerchants), "--heartbeat-interval", "2s",
		"--attempts", "8", "--seed", strconv.FormatUint(seed, 10), "--run-id", lgRunID, "--report", report, "--log-level", "info")
	var stdout strings.Builder
	lg.Stdout = &stdout
	stderr, err := lg.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := lg.Start(); err != nil {
		t.Fatal(err)
	}
	defer lg.Process.Kill()

	// Kill the active node once the profile runs (its first progress
	// line: every terminal registered) and the ledger holds approvals.
	var logMu sync.Mutex // guards logs
	var logs strings.Builder
	sc := bufio.NewScanner(stderr)
	profiling := false
	for !profiling && sc.Scan() {
		line := sc.Text()
		logs.WriteString(line + "\n")
		profiling = strings.Contains(line, "steady") && !strings.Contains(line, "msg=")
	}
	if !profiling {
		lg.Wait()
		t.Fatalf("loadgen ended before its profile started:\n%s%s", &logs, &stdout)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		for sc.Scan() {
			logMu.Lock()
			logs.WriteString(sc.Text() + "\n")
			logMu.Unlock()
		}
	}()
	waitForApprovals(ctx, t, workload.Dial(t, a.addr, workload.AdminToken))
	a.kill()
	killed := time.Now()
	var next, other *node
	select {
	case <-b.serving:
		next, other = b, c
	case <-c.serving:
		next, other = c, b
	case <-time.After(20 * time.Second):
		t.Fatalf("no standby serves 20 s after the active node was killed\nb:\n%s\nc:\n%s", b.log(), c.log())
	}
	t.Logf("node %s took over and serves %v after the active node was killed", next.name, time.Since(killed))

	<-scanned
	werr := lg.Wait()
	logMu.Lock()
	lgLog := logs.String()
	logMu.Unlock()
	if werr != nil {
		t.Fatalf("loadgen across the takeover: %v\n%s%s", werr, lgLog, &stdout)
	}
	t.Logf("loadgen summary:\n%s", &stdout)
	if isClosed(other.serving) || isClosed(other.exited) {
		t.Errorf("node %s: got serving %v, exited %v; want it still a standby", other.name, isClosed(other.serving), isClosed(other.exited))
	}

	res, err := loadgen.ReadResult(filepath.Join(report, loadgen.ReportJSON))
	if err != nil {
		t.Fatal(err)
	}
	auth := res.Op(loadgen.OpAuthorize)
	if auth == nil || auth.OK == 0 {
		t.Fatalf("authorize: got %+v, want approvals", auth)
	}
	bt := res.Batches
	if bt == nil {
		t.Fatal("the report has no account of the batch closes")
	}
	// Every batch close answered and balanced.
	if bt.OutOfBalance != 0 || bt.Failed != 0 || bt.Closed == 0 || bt.InBalance != bt.Closed {
		t.Errorf("batch closes: got %+v, want every one answered and in balance\n%s", bt, lgLog)
	}
	if cb := res.Op(loadgen.OpCloseBatch); cb == nil || cb.Errors != 0 || cb.OK != bt.Closed {
		t.Errorf("close_batch: got %+v, want %d without error", cb, bt.Closed)
	}
	// The node that took over served the terminals' calls.
	if cl := res.Cluster; cl == nil || len(cl.Targets) != 3 {
		t.Errorf("report cluster: got %+v, want three targets", cl)
	} else {
		for _, tr := range cl.Targets {
			if tr.Target == next.addr && tr.Requests-tr.Errors == 0 {
				t.Errorf("node %s that took over: %+v, want calls answered", next.name, tr)
			}
		}
	}

	// The ledger, through the node that took over.
	admin := workload.Dial(t, next.addr, workload.AdminToken)
	led := readLedger(ctx, t, admin, killed)
	t.Logf("ledger: %+v; loadgen: %d approvals answered, %d authorize errors, %+v", led, auth.OK, auth.Errors, *bt)
	if led.totals != bt.Balanced {
		t.Errorf("ledger totals %+v, want the terminals' totals of their balanced batches %+v", led.totals, bt.Balanced)
	}
	if led.approvals != auth.OK+bt.UnknownReversed {
		t.Errorf("approvals in the ledger: got %d, want %d answered + %d reversed after a lost answer", led.approvals, auth.OK, bt.UnknownReversed)
	}
	if led.timeoutReversed != bt.UnknownReversed {
		t.Errorf("approvals reversed with reason TIMEOUT: got %d in the ledger, want the %d the terminals reversed", led.timeoutReversed, bt.UnknownReversed)
	}
	if bt.UnknownReversed > auth.Errors {
		t.Errorf("%d approvals reversed after a lost answer, more than the %d failed authorizations", bt.UnknownReversed, auth.Errors)
	}
	if led.duplicates != 0 {
		t.Errorf("%d requests in the ledger twice", led.duplicates)
	}
	// Killed mid-run, and the terminals carried on: approvals they were
	// told of were decided after the kill.
	if led.approvedBefore == 0 || led.answeredAfter == 0 {
		t.Errorf("approvals decided before the kill: %d; answered approvals decided after it: %d; want both", led.approvedBefore, led.answeredAfter)
	}
	checkWriter(t, url, 2)

	// Stop the cluster, standby first so that no node takes over, and
	// verify the whole ledger from the database.
	for _, n := range []*node{other, next} {
		if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-n.exited:
			if n.err != nil {
				t.Errorf("node %s stopped by SIGTERM: got %v, want exit status 0\n%s", n.name, n.err, n.log())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("node %s still runs 30 s after SIGTERM", n.name)
		}
	}
	db, err := store.OpenPostgres(ctx, store.DefaultPostgresOptions(url), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rep, err := payment.Verify(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		t.Errorf("payment ledger: %s", p)
	}
	if got := rep.Records["transactions"]; got != led.transactions {
		t.Errorf("verify read %d transactions, the node listed %d", got, led.transactions)
	}
}

// ledger is what the run's transactions add up to.
type ledger struct {
	transactions int
	// totals are as a batch counts them: approved sales less the reversed
	// ones, approved refunds, reversed approvals.
	totals loadgen.TotalsResult
	// approvals counts the approved sales, reversed or not;
	// timeoutReversed those reversed with reason TIMEOUT.
	approvals, timeoutReversed int64
	// approvedBefore counts the approvals decided before the kill;
	// answeredAfter those decided after it that were not reversed with
	// reason TIMEOUT: the approvals the terminals were told of.
	approvedBefore, answeredAfter int64
	duplicates                    int
}

// waitForApprovals waits until the ledger holds an approval of the run.
func waitForApprovals(ctx context.Context, t *testing.T, admin *client.Client) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for m := range lgMerchants {
			page, err := admin.Admin().ListTransactions(ctx, &pb.ListTransactionsRequest{
				MerchantId: fmt.Sprintf("L%sM%04d", lgRunID, m), Decision: pb.Decision_DECISION_APPROVED, PageSize: 1,
			})
			if err != nil {
				t.Fatalf("list transactions: %v", err)
			}
			if len(page.GetTransactions()) > 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no approval in the ledger 30 s into the load generator's profile")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readLedger lists every transaction of the run's merchants.
func readLedger(ctx context.Context, t *testing.T, admin *client.Client, killed time.Time) ledger {
	t.Helper()
	var l ledger
	seen := map[string]bool{}
	for m := range lgMerchants {
		tok := ""
		for {
			page, err := admin.Admin().ListTransactions(ctx, &pb.ListTransactionsRequest{
				MerchantId: fmt.Sprintf("L%sM%04d", lgRunID, m), PageSize: 1000, PageToken: tok,
			})
			if err != nil {
				t.Fatalf("list transactions: %v", err)
			}
			for _, tx := range page.GetTransactions() {
				l.add(tx, killed)
				key := tx.GetTerminalId() + "/" + tx.GetRequestId()
				if seen[key] {
					l.duplicates++
				}
				seen[key] = true
			}
			if tok = page.GetNextPageToken(); tok == "" {
				break
			}
		}
	}
	if l.transactions == 0 {
		t.Fatal("no transaction of the run in the ledger")
	}
	return l
}

func (l *ledger) add(tx *pb.Transaction, killed time.Time) {
	l.transactions++
	if tx.GetDecision() != pb.Decision_DECISION_APPROVED {
		return
	}
	amount := tx.GetAmount().GetMinorUnits()
	switch tx.GetKind() {
	case pb.TransactionKind_TRANSACTION_KIND_SALE:
		l.approvals++
		before := !tx.GetDecisionTime().AsTime().After(killed)
		if before {
			l.approvedBefore++
		}
		switch {
		case !tx.GetReversed():
			l.totals.SaleCount++
			l.totals.SaleAmount += amount
		default:
			l.totals.ReversalCount++
			l.totals.ReversalAmount += amount
		}
		if tx.GetReversed() && tx.GetReversalReason() == pb.ReversalReason_REVERSAL_REASON_TIMEOUT {
			l.timeoutReversed++
		} else if !before {
			l.answeredAfter++
		}
	case pb.TransactionKind_TRANSACTION_KIND_REFUND:
		l.totals.RefundCount++
		l.totals.RefundAmount += amount
	}
}
