package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

func simCapture(ctx context.Context, s *simulator, fs *flag.FlagSet, args []string) error {
	authID := fs.String("authorization-id", "", "approved pre-auth to capture (default: the last one not yet captured)")
	amount := fs.String("amount", "", "amount to capture in major units (default: all of the pre-auth)")
	cur := fs.String("currency", "", "ISO 4217 currency of a bare --amount")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	m, err := amountArg(fs, pos, *amount, *cur)
	if err != nil {
		return err
	}
	st, c, err := s.session(fs)
	if err != nil {
		return err
	}
	defer c.Close()
	pre, id := st.pick(*authID, func(e *journalEntry) string { return e.AuthorizationID },
		func(e *journalEntry) bool { return e.Kind == "preauth" && e.Approved && !e.Reversed && e.Captured == 0 })
	if id == "" {
		return fmt.Errorf("no approved pre-auth to capture in %s: give --authorization-id", s.file)
	}
	if m == nil {
		if pre == nil {
			return errors.New("give the amount to capture: the pre-auth is not in the local journal")
		}
		m = &pb.Money{Currency: pre.Currency, MinorUnits: pre.MinorUnits}
	}
	req := &pb.CaptureRequest{AuthorizationId: id, Amount: m}
	resp, err := c.Capture(ctx, req)
	if err != nil {
		return err
	}
	if !resp.GetReplayed() && resp.GetDecision() == pb.Decision_DECISION_APPROVED && pre != nil {
		pre.Captured = m.GetMinorUnits()
	}
	entry := journalEntry{Kind: "capture", RequestID: req.GetRequestId(), AuthorizationID: resp.GetCaptureId()}
	if err := s.record(st, entry, m, resp.GetDecision(), resp.GetBatchNumber(), resp.GetReplayed()); err != nil {
		return err
	}
	return s.fields(
		decisionRow(resp.GetDecision()),
		[]string{"response_code", resp.GetResponseCode() + " " + resp.GetMessage()},
		[]string{"amount", moneyText(m)},
		[]string{"released", moneyText(resp.GetReleasedAmount())},
		[]string{"capture_id", orDash(resp.GetCaptureId())},
		[]string{"batch", strconv.FormatUint(resp.GetBatchNumber(), 10)},
	)
}

func simOpenBatch(ctx context.Context, s *simulator, fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	st, c, err := s.session(fs)
	if err != nil {
		return err
	}
	defer c.Close()
	resp, err := c.OpenBatch(ctx)
	if err != nil {
		return err
	}
	st.OpenBatch = resp.GetBatchNumber()
	if err := s.save(st); err != nil {
		return err
	}
	if err := writeTable(s.out, []string{"TOTALS", "SALES", "REFUNDS", "REVERSALS", "PRE-AUTHS"}, [][]string{
		totalsRow("server", resp.GetServerTotals()),
	}); err != nil {
		return err
	}
	_, err = fmt.Fprintf(s.out, "batch %d is open since %s\n", resp.GetBatchNumber(), tsText(resp.GetOpenTime()))
	return err
}
