package main

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posfleet/posfleet/client"
	"github.com/posfleet/posfleet/internal/pgtest"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// migrate-store copies a Badger deployment, payments included, into an
// empty PostgreSQL database that a server then runs on, and refuses a
// database that already holds data.
func TestMigrateStore(t *testing.T) {
	url := pgtest.NewDatabase(t)
	dir, _ := stoppedServerWithPayments(t, "MIDMIG", "Moving Ltd")

	out, code := runCLI(t, nil, "migrate-store", "--from-data-dir", dir, "--to-database-url", url)
	if code != 0 {
		t.Fatalf("migrate-store: exit %d\n%s", code, out)
	}
	for _, want := range []string{"copied ", "the target holds the same keys and values", "payment transactions: 3", "payment records consistent"} {
		if !strings.Contains(out, want) {
			t.Errorf("migrate-store output lacks %q:\n%s", want, out)
		}
	}

	// The server runs on the copy.
	pg := &AdminCLI{t: t, P: StartServe(t, dir, "--store", "postgres", "--database-url", url), TokenFile: filepath.Join(dir, "admin.token")}
	pg.Expect(pg.Must("merchants", "get", "--id", "MIDMIG"), "Moving Ltd")
	// A node serving the target holds its writer role: refused, not waited for.
	if out, code := runCLI(t, nil, "migrate-store", "--from-data-dir", dir, "--to-database-url", url); code == 0 || !strings.Contains(out, "serving the target database") {
		t.Errorf("migrate-store into a served database: exit %d, output %q; want a refusal naming the serving node", code, out)
	}
	pg.P.Cmd.Process.Signal(syscall.SIGTERM)
	if code := pg.P.Wait(t); code != 0 {
		t.Fatalf("serve on PostgreSQL exit %d\n%s", code, pg.P.Logs)
	}

	out, code = runCLI(t, nil, "migrate-store", "--from-data-dir", dir, "--to-database-url", url)
	if code == 0 || !strings.Contains(out, "not empty") {
		t.Errorf("migrate-store into a database with data: exit %d, output %q; want a refusal", code, out)
	}
}

// stoppedServerWithPayments runs a server in a new data directory, creates
// the merchant with a store and a terminal, approves three captured
// payments of 1.00, 1.01 and 1.02 NZD, stops the server and returns the
// directory and the terminal's ID.
func stoppedServerWithPayments(t *testing.T, merchant, legalName string) (dir, terminalID string) {
	t.Helper()
	dir = t.TempDir()
	cli := &AdminCLI{t: t, P: StartServe(t, dir), TokenFile: filepath.Join(dir, "admin.token")}
	cli.Must("merchants", "create", "--id", merchant, "--legal-name", legalName, "--mcc", "5812", "--currency", "NZD")
	cli.Must("stores", "create", "--merchant", merchant, "--id", "s1", "--name", "One")
	tid, term := cli.ProvisionAndRegister(merchant, "s1", "SN-"+merchant)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for i := range 3 {
		resp, err := term.Authorize(ctx, &pb.AuthorizeRequest{
			RequestId: client.NewRequestID(), MerchantId: merchant, Capture: true,
			Amount: &pb.Money{MinorUnits: int64(100 + i), Currency: "NZD"},
			Card:   &pb.Card{Token: "tok_" + merchant, MaskedPan: "411111******1111", EntryMode: pb.EntryMode_ENTRY_MODE_CHIP},
		})
		if err != nil || resp.GetDecision() != pb.Decision_DECISION_APPROVED {
			t.Fatalf("Authorize: %v, %v", resp, err)
		}
	}
	cli.P.Cmd.Process.Signal(syscall.SIGTERM)
	if code := cli.P.Wait(t); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
	return dir, tid
}
