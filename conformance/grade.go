package conformance

import (
	"context"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// Result is the grade of one scenario.
type Result struct {
	// ID is the scenario's short name (see ScenarioIDs).
	ID string
	// Scenario names what was played and what a terminal must do.
	Scenario string
	// Pass says whether the terminal did it.
	Pass bool
	// Detail says what the terminal did.
	Detail string
}

// Report is what a run found.
type Report struct {
	// Results holds one grade per scenario, in a fixed order.
	Results []Result
	// Calls is how many calls the terminal made.
	Calls int
	// TerminalRan says whether the kit ran the terminal itself;
	// TerminalErr is how that run ended.
	TerminalRan bool
	TerminalErr error
}

// Passed reports whether every scenario passed and the terminal, when the
// kit ran it, exited cleanly.
func (r *Report) Passed() bool {
	if r.TerminalRan && r.TerminalErr != nil {
		return false
	}
	for _, res := range r.Results {
		if !res.Pass {
			return false
		}
	}
	return true
}

// WriteText writes the report for a person to read.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "posfleet conformance report: %d calls from the terminal\n\n", r.Calls)
	for _, res := range r.Results {
		verdict := "PASS"
		if !res.Pass {
			verdict = "FAIL"
		}
		fmt.Fprintf(&b, "%s  %s [%s]\n      %s\n", verdict, res.Scenario, res.ID, res.Detail)
	}
	if r.TerminalRan {
		if r.TerminalErr != nil {
			fmt.Fprintf(&b, "FAIL  the terminal exits cleanly\n      %v\n", r.TerminalErr)
		} else {
			b.WriteString("PASS  the terminal exits cleanly\n")
		}
	}
	if r.Passed() {
		b.WriteString("\nRESULT: PASS\n")
	} else {
		b.WriteString("\nRESULT: FAIL\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Scenario names, in report order.
const (
	ScenarioLostAnswer    = "lost Authorize answer: retry with the same request_id and content"
	ScenarioUnanswered    = "Authorize never answered: reverse it with reason TIMEOUT, never charge again under a new request_id"
	ScenarioRateLimit     = "rate-limited Heartbeat: wait the RetryInfo delay before the next one"
	ScenarioStreamReset   = "WatchConfig stream reset (Unavailable, SHUTTING_DOWN): reconnect with known_version"
	ScenarioCommand       = "remote command delivered on every heartbeat and the stream: acknowledge it exactly once"
	ScenarioConfig        = "pushed config: acknowledge it APPLIED (or REJECTED with a detail)"
	ScenarioBatch         = "batch close after the faults: the terminal's totals agree with the server's"
	ScenarioLostRegister  = "lost Register answer: repeat Register with the same serial and code, run on the credential it returns"
	ScenarioGoaway        = "connection recycled (GOAWAY, Unavailable SHUTTING_DOWN) mid-Authorize: reconnect, retry with the same request_id after the RetryInfo"
	ScenarioRejected      = "config with a heartbeat_interval below 5s: acknowledge it REJECTED with a detail, keep running the previous version"
	ScenarioRotation      = "credential rotation asked mid-stream (ROTATE_CREDENTIAL command), its answer lost: repeat RotateCredential with the old credential, switch to the new one, reopen the watch and acknowledge the command with it"
	ScenarioTombstone     = "Refund of a sale the server reports reversed (12): take the decline as final, count no refund"
	ScenarioBatchMismatch = "batch closed under the terminal (BATCH_MISMATCH): reconcile and close the open batch under a new request_id"
)

// sameContent compares two authorizations as the server's idempotency
// does: every field but local_time.
func sameContent(a, b *pb.AuthorizeRequest) bool {
	a, b = proto.CloneOf(a), proto.CloneOf(b)
	a.LocalTime, b.LocalTime = nil, nil
	return proto.Equal(a, b)
}

// sameSale reports whether b looks like a new attempt at sale a: same
// amount and card, another request_id.
func sameSale(a, b *pb.AuthorizeRequest) bool {
	return a.GetRequestId() != b.GetRequestId() && proto.Equal(a.GetAmount(), b.GetAmount()) && a.GetCard().GetToken() == b.GetCard().GetToken()
}

// grade turns the journal into one result per selected scenario.
func grade(ctx context.Context, events []event, sc *script, op operated, backend *grpc.ClientConn) []Result {
	sc.mu.Lock()
	lostRID, heldRID, goawayRID, duplicated := sc.lostRID, sc.heldRID, sc.goawayRID, sc.duplicated
	rejectVersion, refundRID, oldBearer, closedUnder := sc.rejectVersion, sc.refundRID, sc.oldBearer, sc.closedUnder
	sc.mu.Unlock()
	graders := map[string]func() Result{
		IDLostRegister: func() Result { return gradeLostRegister(events) },
		IDLostAnswer:   func() Result { return gradeLostAnswer(events, lostRID) },
		IDUnanswered:   func() Result { return gradeUnanswered(events, heldRID) },
		IDGoaway:       func() Result { return gradeGoaway(events, goawayRID) },
		IDRateLimit:    func() Result { return gradeRateLimit(events) },
		IDStreamReset:  func() Result { return gradeStreamReset(events) },
		IDCommand:      func() Result { return gradeCommand(events, op.commandID, duplicated) },
		IDRejected:     func() Result { return gradeRejected(events, rejectVersion) },
		IDConfig:       func() Result { return gradeConfig(events, op.configVersion) },
		IDRotation: func() Result {
			c, ok := probeOld(ctx, backend, oldBearer)
			return gradeRotation(events, c, ok, op.rotation)
		},
		IDTombstone:     func() Result { return gradeTombstone(events, refundRID) },
		IDBatchMismatch: func() Result { return gradeBatchMismatch(events) },
		IDBatch:         func() Result { return gradeBatch(events, closedUnder) },
	}
	var out []Result
	for _, id := range scenarioIDs {
		if sc.plays[id] {
			r := graders[id]()
			r.ID = id
			out = append(out, r)
		}
	}
	return out
}

func gradeLostAnswer(events []event, rid string) Result {
	r := Result{Scenario: ScenarioLostAnswer}
	var orig *pb.AuthorizeRequest
	for _, ev := range events {
		a, ok := ev.req.(*pb.AuthorizeRequest)
		rev, isRev := ev.req.(*pb.ReverseRequest)
		switch {
		case ok && orig == nil && a.GetRequestId() == rid:
			orig = a
		case ok && orig != nil && a.GetRequestId() == rid:
			if !sameContent(orig, a) {
				r.Detail = "retried the request_id with different content (the server declines it with 94)"
				return r
			}
			r.Pass, r.Detail = true, "retried with the same request_id and content"
			return r
		case ok && orig != nil:
			r.Detail = fmt.Sprintf("moved on to request_id %s without retrying %s", a.GetRequestId(), rid)
			return r
		case isRev && orig != nil && rev.GetOriginalRequestId() == rid:
			r.Detail = "reversed without retrying once: a sale that was approved is lost to the merchant"
			return r
		}
	}
	if orig == nil {
		r.Detail = "the terminal made no authorization"
	} else {
		r.Detail = "never retried the authorization whose answer was lost"
	}
	return r
}

func gradeUnanswered(events []event, rid string) Result {
	r := Result{Scenario: ScenarioUnanswered}
	if rid == "" {
		r.Detail = "not played: the terminal made no second authorization"
		return r
	}
	var orig *pb.AuthorizeRequest
	tries := 0
	for _, ev := range events {
		switch m := ev.req.(type) {
		case *pb.AuthorizeRequest:
			switch {
			case m.GetRequestId() == rid && orig == nil:
				orig, tries = m, 1
			case m.GetRequestId() == rid:
				if !sameContent(orig, m) {
					r.Detail = "retried the request_id with different content"
					return r
				}
				tries++
			case orig != nil && sameSale(orig, m):
				r.Detail = fmt.Sprintf("charged the same sale again under new request_id %s before reversing %s", m.GetRequestId(), rid)
				return r
			}
		case *pb.ReverseRequest:
			if m.GetOriginalRequestId() != rid {
				continue
			}
			if m.GetReason() != pb.ReversalReason_REVERSAL_REASON_TIMEOUT {
				r.Detail = fmt.Sprintf("reversed with reason %s, want REVERSAL_REASON_TIMEOUT", m.GetReason())
				return r
			}
			r.Pass, r.Detail = true, fmt.Sprintf("reversed with reason TIMEOUT after %d tries with the same request_id", tries)
			return r
		}
	}
	r.Detail = fmt.Sprintf("never reversed the unanswered authorization (%d tries)", tries)
	return r
}

func gradeRateLimit(events []event) Result {
	r := Result{Scenario: ScenarioRateLimit}
	first := -1
	for i, ev := range events {
		if ev.method != "Heartbeat" {
			continue
		}
		if first < 0 {
			first = i
			continue
		}
		// A clock on the terminal's side may run a little early: 10% slack.
		wait := ev.at.Sub(events[first].at)
		if wait < RateLimitDelay*9/10 {
			r.Detail = fmt.Sprintf("next heartbeat after %v, RetryInfo said %v", wait.Round(1e6), RateLimitDelay)
			return r
		}
		r.Pass, r.Detail = true, fmt.Sprintf("next heartbeat after %v (RetryInfo: %v)", wait.Round(1e6), RateLimitDelay)
		return r
	}
	if first < 0 {
		r.Detail = "the terminal sent no heartbeat"
	} else {
		r.Detail = "no heartbeat after the rate-limited one"
	}
	return r
}

func gradeStreamReset(events []event) Result {
	r := Result{Scenario: ScenarioStreamReset}
	var watches []*pb.WatchConfigRequest
	for _, ev := range events {
		if w, ok := ev.req.(*pb.WatchConfigRequest); ok {
			watches = append(watches, w)
		}
	}
	switch {
	case len(watches) == 0:
		r.Detail = "the terminal never watched its config"
	case len(watches) == 1:
		r.Detail = "did not reconnect after the reset"
	case watches[1].GetKnownVersion() < watches[0].GetKnownVersion():
		r.Detail = fmt.Sprintf("reconnected from version %d, behind the %d it had", watches[1].GetKnownVersion(), watches[0].GetKnownVersion())
	default:
		r.Pass, r.Detail = true, fmt.Sprintf("reconnected with known_version %d", watches[1].GetKnownVersion())
	}
	return r
}

func gradeCommand(events []event, id string, duplicated bool) Result {
	r := Result{Scenario: ScenarioCommand}
	if id == "" {
		r.Detail = "not played: the terminal finished (or never registered) before a command was queued"
		return r
	}
	acks := 0
	for _, ev := range events {
		if a, ok := ev.req.(*pb.AckCommandRequest); ok && a.GetCommandId() == id {
			acks++
		}
	}
	r.Pass = acks == 1
	r.Detail = fmt.Sprintf("command %s acknowledged %d times", id, acks)
	if duplicated {
		r.Detail += " (delivered twice on the stream)"
	}
	return r
}

func gradeConfig(events []event, version uint64) Result {
	r := Result{Scenario: ScenarioConfig}
	if version == 0 {
		r.Detail = "not played: the terminal finished (or never registered) before a config was published"
		return r
	}
	for _, ev := range events {
		a, ok := ev.req.(*pb.AckConfigRequest)
		if !ok || a.GetVersion() != version {
			continue
		}
		switch {
		case a.GetResult() == pb.ConfigApplyResult_CONFIG_APPLY_RESULT_APPLIED:
			r.Pass, r.Detail = true, fmt.Sprintf("version %d acknowledged APPLIED", version)
		case a.GetResult() == pb.ConfigApplyResult_CONFIG_APPLY_RESULT_REJECTED && a.GetDetail() != "":
			r.Pass, r.Detail = true, fmt.Sprintf("version %d acknowledged REJECTED: %s", version, a.GetDetail())
		default:
			r.Detail = fmt.Sprintf("version %d acknowledged %s without a detail", version, a.GetResult())
		}
		return r
	}
	r.Detail = fmt.Sprintf("version %d never acknowledged", version)
	return r
}

// gradeBatch grades the first close the server carried out. When the
// server closed the batch itself first (batch-mismatch), the terminal's
// totals in its refused close are compared with the server's, read just
// before (closedUnder).
func gradeBatch(events []event, closedUnder *pb.GetOpenBatchResponse) Result {
	r := Result{Scenario: ScenarioBatch}
	for _, ev := range events {
		req, _ := ev.req.(*pb.CloseBatchRequest)
		if req != nil && closedUnder != nil && ev.injected != "" && req.GetBatchNumber() == closedUnder.GetBatchNumber() {
			server := closedUnder.GetServerTotals()
			if !balances(req.GetTerminalTotals(), server) {
				r.Detail = fmt.Sprintf("batch %d (closed by the server after a rebind) out of balance: terminal %s, server %s", req.GetBatchNumber(), totals(req.GetTerminalTotals()), totals(server))
				return r
			}
			r.Pass, r.Detail = true, fmt.Sprintf("batch %d (closed by the server after a rebind) in balance: %s", req.GetBatchNumber(), totals(server))
			return r
		}
		resp, ok := ev.resp.(*pb.CloseBatchResponse)
		if !ok || resp.GetReplayed() {
			continue
		}
		if !resp.GetInBalance() {
			r.Detail = fmt.Sprintf("batch %d out of balance: terminal %s, server %s", resp.GetBatchNumber(), totals(req.GetTerminalTotals()), totals(resp.GetServerTotals()))
			return r
		}
		r.Pass, r.Detail = true, fmt.Sprintf("batch %d in balance: %s", resp.GetBatchNumber(), totals(resp.GetServerTotals()))
		return r
	}
	r.Detail = "the terminal never closed its batch"
	return r
}

// balances reports whether two batch totals agree as CloseBatch balances
// them: sale, refund and reversal counts and amounts.
func balances(a, b *pb.BatchTotals) bool {
	return a.GetSaleCount() == b.GetSaleCount() && a.GetSaleAmount().GetMinorUnits() == b.GetSaleAmount().GetMinorUnits() &&
		a.GetRefundCount() == b.GetRefundCount() && a.GetRefundAmount().GetMinorUnits() == b.GetRefundAmount().GetMinorUnits() &&
		a.GetReversalCount() == b.GetReversalCount() && a.GetReversalAmount().GetMinorUnits() == b.GetReversalAmount().GetMinorUnits()
}

// totals formats batch totals in minor units.
func totals(t *pb.BatchTotals) string {
	return fmt.Sprintf("sales %d/%d, refunds %d/%d, reversals %d/%d",
		t.GetSaleCount(), t.GetSaleAmount().GetMinorUnits(), t.GetRefundCount(), t.GetRefundAmount().GetMinorUnits(),
		t.GetReversalCount(), t.GetReversalAmount().GetMinorUnits())
}
