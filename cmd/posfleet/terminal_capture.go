package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

func simCapture(ctx context.Context, s *simulator, fs *flag.FlagSet, args []string) error {
	f, err := s.followUp(fs, args, followUpSpec{
		verb: "capture", original: "pre-auth",
		idHelp:     "approved pre-auth to capture (default: the last one not yet captured)",
		amountHelp: "amount to capture in major units (default: all of the pre-auth)",
		eligible: func(e *journalEntry) bool {
			return e.Kind == "preauth" && e.Approved && !e.Reversed && e.Captured == 0
		},
		rest: func(e *journalEntry) int64 { return e.MinorUnits },
	})
	if err != nil {
		return err
	}
	defer f.c.Close()
	st, c, pre, id, m := f.st, f.c, f.orig, f.id, f.amount
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
