package main

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	cli := &AdminCLI{t: t, P: StartServe(t, dir), TokenFile: filepath.Join(dir, "admin.token")}
	cli.Must("merchants", "create", "--id", "MIDVER", "--legal-name", "Verify Ltd", "--mcc", "5812", "--currency", "NZD")
	cli.Must("stores", "create", "--merchant", "MIDVER", "--id", "s1", "--name", "One")
	tid, term := cli.ProvisionAndRegister("MIDVER", "s1", "SN-VER")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for i := range 3 {
		resp, err := term.Authorize(ctx, &pb.AuthorizeRequest{
			RequestId: client.NewRequestID(), MerchantId: "MIDVER", Capture: true,
			Amount: &pb.Money{MinorUnits: int64(100 + i), Currency: "NZD"},
			Card:   &pb.Card{Token: "tok_ver", MaskedPan: "411111******1111", EntryMode: pb.EntryMode_ENTRY_MODE_CHIP},
		})
		if err != nil || resp.GetDecision() != pb.Decision_DECISION_APPROVED {
			t.Fatalf("Authorize: %v, %v", resp, err)
		}
	}
	cli.P.Cmd.Process.Signal(syscall.SIGTERM)
	if code := cli.P.Wait(t); code != 0 {
		t.Fatalf("serve exit %d", code)
	}

	out, code := runCLI(t, []string{"POSFLEET_DATA_DIR=" + dir}, "verify")
	if code != 0 {
		t.Fatalf("verify of an intact database: exit %d\n%s", code, out)
	}
	for _, want := range []string{"payment transactions", "merchants                        1", "stores                           1", "OK: no problems found", "last transaction 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}

	// Damage: a commit chunk, a merchant and a terminal disappear.
	db := storetest.OpenDir(t, dir)
	err := db.Update(func(tx *store.Txn) error {
		if err := tx.Delete(store.AppendUint64([]byte("pay/lg/"), 1)); err != nil {
			return err
		}
		if err := tx.Delete([]byte("t/" + tid)); err != nil {
			return err
		}
		return tx.Delete([]byte("m/MIDVER"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, code = runCLI(t, nil, "verify", "--data-dir", dir)
	if code != 3 {
		t.Fatalf("verify of a damaged database: exit %d, want 3\n%s", code, out)
	}
	for _, want := range []string{"DAMAGED", "its merchant (\"m/MIDVER\") is missing", "the first commit chunk starts at sequence number",
		"payment transactions of " + tid + ": its terminal"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	if out, code := runCLI(t, nil, "serve", "--data-dir", dir, "--listen", "127.0.0.1:0"); code == 0 || !strings.Contains(out, "ledger is damaged") {
		t.Errorf("serve on the damaged database: exit %d, want non-zero saying the ledger is damaged\n%s", code, out)
	}
}
