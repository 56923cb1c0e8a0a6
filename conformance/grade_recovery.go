package conformance

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// Grades of the scenarios in which the terminal recovers its footing: a
// lost Register answer, a recycled connection, a config it must refuse, a
// credential rotated mid-stream, a refund of a reversed sale and a batch
// the server closed under it.

func gradeLostRegister(events []event) Result {
	r := Result{Scenario: ScenarioLostRegister}
	var first *pb.RegisterRequest
	tries, delivered := 0, ""
	for i, ev := range events {
		if reg, ok := ev.req.(*pb.RegisterRequest); ok {
			if first == nil {
				first = reg
			} else if reg.GetSerialNumber() != first.GetSerialNumber() || reg.GetEnrollmentCode() != first.GetEnrollmentCode() {
				r.Detail = "repeated Register with another serial number or enrollment code"
				return r
			}
			tries++
			if ev.code == codes.OK && ev.issued != "" {
				delivered = ev.issued
			}
			continue
		}
		if ev.cred == "" || first == nil {
			continue
		}
		// The first authenticated call tells which credential the
		// terminal kept.
		switch {
		case tries == 1:
			r.Detail = "called on without repeating Register after its answer was lost"
		case ev.cred != delivered:
			r.Detail = fmt.Sprintf("authenticated %s with a credential the kit never delivered", events[i].method)
		case !ev.accepted && ev.code != codes.ResourceExhausted:
			r.Detail = fmt.Sprintf("%s with the registered credential failed: %s", ev.method, ev.code)
		default:
			r.Pass, r.Detail = true, fmt.Sprintf("repeated Register (%d tries, same serial and code) and runs on the credential the answer brought", tries)
		}
		return r
	}
	switch {
	case first == nil:
		r.Detail = "the terminal never registered"
	case tries == 1:
		r.Detail = "never repeated Register after its answer was lost"
	default:
		r.Detail = fmt.Sprintf("repeated Register %d times but never made a call with its credential", tries-1)
	}
	return r
}

func gradeGoaway(events []event, rid string) Result {
	r := Result{Scenario: ScenarioGoaway}
	if rid == "" {
		r.Detail = "not played: the terminal made no further authorization with a new request_id"
		return r
	}
	at := -1
	for i, ev := range events {
		a, isAuth := ev.req.(*pb.AuthorizeRequest)
		rev, isRev := ev.req.(*pb.ReverseRequest)
		switch {
		case at < 0 && isAuth && a.GetRequestId() == rid:
			at = i
		case at < 0:
		case isAuth && a.GetRequestId() == rid:
			orig := events[at]
			if !sameContent(orig.req.(*pb.AuthorizeRequest), a) {
				r.Detail = "retried the request_id with different content (the server declines it with 94)"
				return r
			}
			if wait := ev.at.Sub(orig.at); wait < GoawayRetryDelay*9/10 {
				r.Detail = fmt.Sprintf("retried after %v, RetryInfo said %v", wait.Round(time.Millisecond), GoawayRetryDelay)
				return r
			}
			if ev.code != codes.OK {
				continue
			}
			conn := "a new connection"
			if ev.conn == orig.conn {
				conn = "the same connection"
			}
			r.Pass, r.Detail = true, fmt.Sprintf("retried with the same request_id on %s after %v; the server replayed its decision", conn, ev.at.Sub(orig.at).Round(time.Millisecond))
			return r
		case isAuth && sameSale(events[at].req.(*pb.AuthorizeRequest), a):
			r.Detail = fmt.Sprintf("charged the same sale again under new request_id %s: the first was approved", a.GetRequestId())
			return r
		case isRev && rev.GetOriginalRequestId() == rid:
			r.Detail = "reversed without retrying: the server was only draining, and the approval is lost to the merchant"
			return r
		}
	}
	r.Detail = "never retried the authorization in flight when the connection was recycled"
	return r
}

func gradeRejected(events []event, version uint64) Result {
	r := Result{Scenario: ScenarioRejected}
	if version == 0 {
		r.Detail = "not played: the config with bad settings was never pushed (the terminal finished, or did not watch)"
		return r
	}
	acked := -1
	for i, ev := range events {
		if acked < 0 {
			a, ok := ev.req.(*pb.AckConfigRequest)
			if !ok || a.GetVersion() != version {
				continue
			}
			switch {
			case a.GetResult() == pb.ConfigApplyResult_CONFIG_APPLY_RESULT_APPLIED:
				r.Detail = fmt.Sprintf("acknowledged version %d APPLIED with a heartbeat_interval of %v (the protocol's minimum is 5s)", version, BadHeartbeatInterval)
				return r
			case a.GetResult() != pb.ConfigApplyResult_CONFIG_APPLY_RESULT_REJECTED || a.GetDetail() == "":
				r.Detail = fmt.Sprintf("acknowledged version %d %s without a detail", version, a.GetResult())
				return r
			}
			acked, r.Detail = i, fmt.Sprintf("version %d acknowledged REJECTED: %s", version, a.GetDetail())
			continue
		}
		if hb, ok := ev.req.(*pb.HeartbeatRequest); ok && hb.GetStatus().GetConfigVersion() == version {
			r.Detail = fmt.Sprintf("rejected version %d, then reported running it in a heartbeat", version)
			return r
		}
	}
	if acked < 0 {
		r.Detail = fmt.Sprintf("version %d never acknowledged", version)
		return r
	}
	r.Pass = true
	return r
}

// probeOld reports how the server answers a call with the credential the
// terminal rotated away from: Unauthenticated once the new one was used.
// It returns OK, and false, when there is nothing to probe.
func probeOld(ctx context.Context, backend *grpc.ClientConn, bearer string) (codes.Code, bool) {
	if bearer == "" {
		return codes.OK, false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+bearer)
	_, err := pb.NewTerminalServiceClient(backend).Heartbeat(ctx, &pb.HeartbeatRequest{Status: &pb.TerminalStatus{}})
	return status.Code(err), true
}

// rotationAsk is the kit's request for a rotation: the
// COMMAND_TYPE_ROTATE_CREDENTIAL command's ID, and the journal's length
// when it was queued. id is empty when it was not queued.
type rotationAsk struct {
	id string
	at int
}

func gradeRotation(events []event, probe codes.Code, probed bool, ask rotationAsk) Result {
	r := Result{Scenario: ScenarioRotation}
	var rot []int
	newCred := ""
	for i, ev := range events {
		if ev.method == "RotateCredential" {
			rot = append(rot, i)
			if newCred == "" && ev.code == codes.OK && ev.issued != "" {
				newCred = ev.issued
			}
		}
	}
	switch {
	case len(rot) == 0 && ask.id != "":
		r.Detail = fmt.Sprintf("never rotated its credential (the kit queued ROTATE_CREDENTIAL command %s)", ask.id)
		return r
	case len(rot) == 0:
		r.Detail = "never rotated its credential"
		return r
	case events[rot[0]].streams == 0:
		r.Detail = "rotated with no WatchConfig stream open; the scenario wants the rotation mid-stream"
		return r
	case len(rot) == 1:
		r.Detail = "never repeated RotateCredential after its answer was lost"
		return r
	case events[rot[1]].cred != events[rot[0]].cred:
		r.Detail = "repeated RotateCredential with another credential than the one it called with"
		return r
	case newCred == "":
		r.Detail = "no RotateCredential of the terminal was answered"
		return r
	}
	old := events[rot[0]].cred
	first, rewatched, lastWatch := -1, false, uint64(0)
	for i, ev := range events {
		w, isWatch := ev.req.(*pb.WatchConfigRequest)
		switch {
		case first < 0 && isWatch && ev.cred == old:
			lastWatch = w.GetKnownVersion()
		case first < 0 && ev.cred == newCred && ev.accepted:
			first = i
			if isWatch {
				rewatched = true
			}
		case first < 0:
		case ev.cred == old:
			r.Detail = fmt.Sprintf("called %s with the old credential after the new one's first use (the server refuses it)", ev.method)
			return r
		case ev.method == "RotateCredential":
			r.Detail = "rotated again with the new credential: a terminal rotates once per command"
			return r
		case isWatch && ev.cred == newCred:
			if w.GetKnownVersion() < lastWatch {
				r.Detail = fmt.Sprintf("reopened the watch from version %d, behind the %d it had", w.GetKnownVersion(), lastWatch)
				return r
			}
			rewatched = true
		}
	}
	switch {
	case first < 0:
		r.Detail = "never made a call with the new credential"
		return r
	case !rewatched:
		r.Detail = "did not reopen its config watch with the new credential after the old stream ended (Unauthenticated)"
		return r
	case probed && probe != codes.Unauthenticated:
		r.Detail = fmt.Sprintf("the old credential still works after the new one's first use (a probe got %s)", probe)
		return r
	}
	done := fmt.Sprintf("repeated RotateCredential with the old credential (%d tries), switched to the new one at %s and reopened the watch with it; the old one is refused", len(rot), events[first].method)
	if ask.id == "" || rot[0] < ask.at {
		// A terminal that rotates when POSFLEET_ROTATE_CREDENTIAL says so,
		// before the command came: deprecated, passed for one release.
		r.Pass, r.Detail = true, "DEPRECATED: rotated on POSFLEET_ROTATE_CREDENTIAL, not on the ROTATE_CREDENTIAL command (a later release fails this); "+done
		return r
	}
	return gradeRotationAck(events, r, ask.id, old, newCred, done)
}

// gradeRotationAck grades the acknowledgement of the rotation command id:
// SUCCEEDED, sent with the new credential.
func gradeRotationAck(events []event, r Result, id, old, newCred, done string) Result {
	for _, ev := range events {
		a, ok := ev.req.(*pb.AckCommandRequest)
		if !ok || a.GetCommandId() != id {
			continue
		}
		switch {
		case a.GetResult() != pb.CommandResult_COMMAND_RESULT_SUCCEEDED:
			r.Detail = fmt.Sprintf("rotated, but acknowledged command %s %s", id, a.GetResult())
			return r
		case ev.cred == old:
			r.Detail = fmt.Sprintf("acknowledged command %s with the old credential: acknowledge once switched to the new one", id)
			return r
		case ev.cred == newCred && ev.code == codes.OK:
			r.Pass, r.Detail = true, fmt.Sprintf("rotated on command %s and acknowledged it SUCCEEDED with the new credential; %s", id, done)
			return r
		}
	}
	r.Detail = fmt.Sprintf("rotated, but never acknowledged command %s with the new credential", id)
	return r
}

func gradeTombstone(events []event, rid string) Result {
	r := Result{Scenario: ScenarioTombstone}
	if rid == "" {
		r.Detail = "not played: the terminal made no refund"
		return r
	}
	var orig *pb.RefundRequest
	repeats, approved := 0, 0
	for _, ev := range events {
		switch m := ev.req.(type) {
		case *pb.RefundRequest:
			switch {
			case m.GetRequestId() == rid && orig == nil:
				orig = m
			case m.GetRequestId() == rid:
				repeats++
			case orig != nil && m.GetAuthorizationId() == orig.GetAuthorizationId():
				r.Detail = fmt.Sprintf("refunded the sale again under new request_id %s after it was declined 12", m.GetRequestId())
				return r
			}
			if resp, ok := ev.resp.(*pb.RefundResponse); ok && m.GetRequestId() != rid && resp.GetDecision() == pb.Decision_DECISION_APPROVED && !resp.GetReplayed() {
				approved++
			}
		case *pb.CloseBatchRequest:
			if orig != nil && m.GetTerminalTotals().GetRefundCount() > uint64(approved) {
				r.Detail = fmt.Sprintf("its batch totals count %d refunds, %d were approved: the declined one was counted", m.GetTerminalTotals().GetRefundCount(), approved)
				return r
			}
		}
	}
	if repeats > 3 {
		r.Detail = fmt.Sprintf("sent the declined refund %d more times: a decline is an answer", repeats)
		return r
	}
	r.Pass, r.Detail = true, fmt.Sprintf("took the 12 as final (%d repeats of the same request_id), no new refund of the sale, none counted", repeats)
	return r
}

func gradeBatchMismatch(events []event) Result {
	r := Result{Scenario: ScenarioBatchMismatch}
	var first *pb.CloseBatchRequest
	var open string
	lookups := 0
	for _, ev := range events {
		switch m := ev.req.(type) {
		case *pb.GetOpenBatchRequest:
			lookups++
		case *pb.CloseBatchRequest:
			if first == nil {
				if ev.code != codes.FailedPrecondition || ev.reason != "BATCH_MISMATCH" {
					r.Detail = fmt.Sprintf("not played: the first close was answered %s %s, not BATCH_MISMATCH", ev.code, ev.reason)
					return r
				}
				first, open = m, ev.meta["open_batch_number"]
				lookups = 0
				continue
			}
			switch {
			case m.GetRequestId() == first.GetRequestId() && proto.Equal(m, first):
				r.Detail = "repeated the refused close: a FailedPrecondition does not change by itself"
				return r
			case m.GetRequestId() == first.GetRequestId():
				r.Detail = "closed again under the refused close's request_id (REQUEST_ID_REUSED)"
				return r
			case fmt.Sprint(m.GetBatchNumber()) != open:
				r.Detail = fmt.Sprintf("closed batch %d, but the open batch is %s", m.GetBatchNumber(), open)
				return r
			case ev.code == codes.OK:
				r.Pass, r.Detail = true, fmt.Sprintf("closed the open batch %s under a new request_id (%d GetOpenBatch calls before)", open, lookups)
				return r
			}
		}
	}
	if first == nil {
		r.Detail = "the terminal never closed its batch"
	} else {
		r.Detail = fmt.Sprintf("never closed the open batch %s after BATCH_MISMATCH", open)
	}
	return r
}
