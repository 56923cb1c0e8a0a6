package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// Operator commands for payment transactions and settlement.

func init() {
	registerAdmin("transactions", "list", "list payment transactions, newest first", transactionsList)
	registerAdmin("report", "settlement", "settlement totals of a merchant for one business date", reportSettlement)
}

func transactionsList(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "transactions", "list")
	terminal := fs.String("terminal", "", "only transactions of this terminal")
	merchant := fs.String("merchant", "", "only transactions of this merchant")
	storeID := fs.String("store", "", "only transactions of this store (with --merchant)")
	code := fs.String("response-code", "", "only transactions answered with this response code, e.g. 51")
	batch := fs.Uint64("batch", 0, "only this batch (with --terminal)")
	decision := fs.String("decision", "", "only approved or declined")
	since := fs.Duration("since", 0, "only transactions of the last duration, e.g. 24h")
	limit := fs.Int("limit", 100, "most transactions to print (at most 1000)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	d, err := parseEnum("decision", *decision, "DECISION_", pb.Decision_value)
	if err != nil {
		return err
	}
	if *limit < 1 || *limit > 1000 {
		return fmt.Errorf("--limit must be between 1 and 1000")
	}
	req := &pb.ListTransactionsRequest{
		TerminalId: *terminal, MerchantId: *merchant, StoreId: *storeID, ResponseCode: *code,
		BatchNumber: *batch, Decision: pb.Decision(d), PageSize: int32(*limit),
	}
	if *since > 0 {
		req.StartTime = timestamppb.New(time.Now().Add(-*since))
	}
	resp, err := env.Client.Admin().ListTransactions(ctx, req)
	if err != nil {
		return err
	}
	if from := resp.GetSearchedFrom(); from != nil {
		fmt.Fprintf(env.Err, "searched transactions decided since %s: older ones may match too\n", tsText(from))
	}
	rows := make([][]string, len(resp.GetTransactions()))
	for i, t := range resp.GetTransactions() {
		flags := ""
		if t.GetReversed() {
			flags = "reversed"
		}
		rows[i] = []string{tsText(t.GetDecisionTime()), t.GetTransactionId(), enumName(t.GetKind().String(), "TRANSACTION_KIND_"),
			t.GetTerminalId(), t.GetMerchantId(), moneyText(t.GetAmount()), enumName(t.GetDecision().String(), "DECISION_"),
			t.GetResponseCode(), orDash(t.GetAuthCode()), orDash(t.GetMaskedPan()), strconv.FormatUint(t.GetBatchNumber(), 10),
			moneyText(t.GetRefundedAmount()), orDash(flags)}
	}
	return env.print(resp, []string{"TIME", "ID", "KIND", "TERMINAL", "MERCHANT", "AMOUNT", "DECISION", "CODE", "AUTH", "CARD", "BATCH", "REFUNDED", "FLAGS"}, rows)
}

func totalsRow(label string, t *pb.BatchTotals) []string {
	return []string{label,
		fmt.Sprintf("%d / %s", t.GetSaleCount(), moneyText(t.GetSaleAmount())),
		fmt.Sprintf("%d / %s", t.GetRefundCount(), moneyText(t.GetRefundAmount())),
		fmt.Sprintf("%d / %s", t.GetReversalCount(), moneyText(t.GetReversalAmount())),
		fmt.Sprintf("%d / %s", t.GetPreauthCount(), moneyText(t.GetPreauthAmount()))}
}

func reportSettlement(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "report", "settlement")
	merchant := fs.String("merchant", "", "merchant ID (required)")
	date := fs.String("date", "", "business date YYYY-MM-DD (default: today, UTC)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := need(fs, "merchant"); err != nil {
		return err
	}
	resp, err := env.Client.SettlementReport(ctx, *merchant, *date)
	if err != nil {
		return err
	}
	rows := [][]string{totalsRow("TOTAL "+resp.GetBusinessDate(), resp.GetTotals())}
	for _, b := range resp.GetBatches() {
		label := fmt.Sprintf("%s #%d %s", b.GetTerminalId(), b.GetBatchNumber(), enumName(b.GetState().String(), "BATCH_STATE_"))
		rows = append(rows, totalsRow(label, b.GetServerTotals()))
	}
	return env.print(resp, []string{"BATCH", "SALES", "REFUNDS", "REVERSALS", "PRE-AUTHS"}, rows)
}
