package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

func TestAdminPaymentCommands(t *testing.T) {
	cli := StartAdminCLI(t)
	p, tokenFile := cli.P, cli.TokenFile
	admin := cli.Must
	admin("merchants", "create", "--id", "MIDPAY", "--legal-name", "Pay Ltd", "--mcc", "5812", "--currency", "NZD")
	admin("stores", "create", "--merchant", "MIDPAY", "--id", "s1", "--name", "One")
	tid, term := cli.ProvisionAndRegister("MIDPAY", "s1", "SN-PAY")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for i, amount := range []int64{1250, 730} {
		resp, err := term.Authorize(ctx, &pb.AuthorizeRequest{
			RequestId: client.NewRequestID(), MerchantId: "MIDPAY", Capture: true,
			Amount: &pb.Money{MinorUnits: amount, Currency: "NZD"},
			Card:   &pb.Card{Token: "tok_cli_" + string(rune('a'+i)), MaskedPan: "411111******1111", EntryMode: pb.EntryMode_ENTRY_MODE_CHIP},
		})
		if err != nil || resp.GetDecision() != pb.Decision_DECISION_APPROVED {
			t.Fatalf("Authorize %d: %v, %v", amount, resp, err)
		}
	}

	out := admin("transactions", "list", "--terminal", tid)
	for _, want := range []string{"SALE", "12.50 NZD", "7.30 NZD", "APPROVED", "411111******1111"} {
		if !strings.Contains(out, want) {
			t.Errorf("transactions list lacks %q:\n%s", want, out)
		}
	}
	if _, code := runCLI(t, nil, "admin", "--target", p.Addr, "--admin-token-file", tokenFile, "transactions", "list", "--decision", "maybe"); code == 0 {
		t.Errorf("transactions list --decision maybe was accepted")
	}
	if out := admin("transactions", "list", "--merchant", "MIDPAY", "--store", "s1", "--response-code", "00"); !strings.Contains(out, "12.50 NZD") || !strings.Contains(out, "7.30 NZD") {
		t.Errorf("transactions list --store s1 --response-code 00 lacks the sales:\n%s", out)
	}
	if out := admin("transactions", "list", "--response-code", "51"); strings.Contains(out, "NZD") {
		t.Errorf("transactions list --response-code 51 lists approvals:\n%s", out)
	}
	if out, code := runCLI(t, nil, "admin", "--target", p.Addr, "--admin-token-file", tokenFile, "transactions", "list", "--store", "s1"); code == 0 || !strings.Contains(out, "store_id") {
		t.Errorf("transactions list --store without --merchant: exit %d, output %q; want a failure naming store_id", code, out)
	}
	out = admin("report", "settlement", "--merchant", "MIDPAY")
	if !strings.Contains(out, "2 / 19.80 NZD") {
		t.Errorf("settlement report lacks the sale totals 2 / 19.80 NZD:\n%s", out)
	}
}
