package conformance

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

func auth(rid string, minor int64) *pb.AuthorizeRequest {
	return &pb.AuthorizeRequest{RequestId: rid, MerchantId: "M1", Amount: &pb.Money{MinorUnits: minor, Currency: "NZD"}, Card: &pb.Card{Token: "tok_1"}, Capture: true}
}

// Grades of journals no terminal in the package tests produces.
func TestGrades(t *testing.T) {
	later := auth("a", 100)
	later.LocalTime = timestamppb.New(time.Unix(1_800_000_000, 0))
	t0 := time.Unix(1_800_000_000, 0)
	asked := rotationAsk{id: "c9", at: 0}
	rotGrade := func(e []event) Result { return gradeRotation(e, codes.Unauthenticated, true, asked) }
	rotated := []event{{method: "RotateCredential", cred: "old", streams: 1}, {method: "RotateCredential", cred: "old", issued: "new"}}
	ack := func(cred string) event {
		return event{req: &pb.AckCommandRequest{CommandId: "c9", Result: pb.CommandResult_COMMAND_RESULT_SUCCEEDED}, cred: cred, accepted: true}
	}
	rewatch := event{req: &pb.WatchConfigRequest{}, cred: "new", accepted: true}
	for _, tc := range []struct {
		name   string
		grade  func([]event) Result
		events []event
		pass   bool
		detail string
	}{
		{"retry differs only in local_time", func(e []event) Result { return gradeLostAnswer(e, "a") },
			[]event{{req: auth("a", 100)}, {req: later}}, true, "same request_id and content"},
		{"retry with another amount", func(e []event) Result { return gradeLostAnswer(e, "a") },
			[]event{{req: auth("a", 100)}, {req: auth("a", 200)}}, false, "different content"},
		{"reversed without a retry", func(e []event) Result { return gradeLostAnswer(e, "a") },
			[]event{{req: auth("a", 100)}, {req: &pb.ReverseRequest{OriginalRequestId: "a", Reason: pb.ReversalReason_REVERSAL_REASON_TIMEOUT}}}, false, "without retrying"},
		{"reversed for the wrong reason", func(e []event) Result { return gradeUnanswered(e, "b") },
			[]event{{req: auth("b", 100)}, {req: &pb.ReverseRequest{OriginalRequestId: "b", Reason: pb.ReversalReason_REVERSAL_REASON_CUSTOMER_CANCEL}}}, false, "want REVERSAL_REASON_TIMEOUT"},
		{"another sale is not a recharge", func(e []event) Result { return gradeUnanswered(e, "b") },
			[]event{{req: auth("b", 100)}, {req: auth("c", 250)}, {req: &pb.ReverseRequest{OriginalRequestId: "b", Reason: pb.ReversalReason_REVERSAL_REASON_TIMEOUT}}}, true, "after 1 tries"},
		{"heartbeat retried too early", gradeRateLimit,
			[]event{{method: "Heartbeat", at: t0}, {method: "Heartbeat", at: t0.Add(200 * time.Millisecond)}}, false, "RetryInfo said"},
		{"reconnect went backwards", gradeStreamReset,
			[]event{{req: &pb.WatchConfigRequest{KnownVersion: 3}}, {req: &pb.WatchConfigRequest{KnownVersion: 0}}}, false, "behind"},
		{"command acked twice", func(e []event) Result { return gradeCommand(e, "c1", true) },
			[]event{{req: &pb.AckCommandRequest{CommandId: "c1"}}, {req: &pb.AckCommandRequest{CommandId: "c1"}}}, false, "2 times (delivered twice on the stream)"},
		{"config rejected without a detail", func(e []event) Result { return gradeConfig(e, 4) },
			[]event{{req: &pb.AckConfigRequest{Version: 4, Result: pb.ConfigApplyResult_CONFIG_APPLY_RESULT_REJECTED}}}, false, "without a detail"},
		{"batch out of balance", func(e []event) Result { return gradeBatch(e, nil) },
			[]event{{req: &pb.CloseBatchRequest{TerminalTotals: &pb.BatchTotals{SaleCount: 2}}, resp: &pb.CloseBatchResponse{BatchNumber: 1, ServerTotals: &pb.BatchTotals{SaleCount: 1}}}}, false, "terminal sales 2/0, refunds 0/0, reversals 0/0, server sales 1/0"},
		{"register repeated with another code", gradeLostRegister,
			[]event{{req: &pb.RegisterRequest{SerialNumber: "S", EnrollmentCode: "A"}}, {req: &pb.RegisterRequest{SerialNumber: "S", EnrollmentCode: "B"}}}, false, "another serial number or enrollment code"},
		{"goaway retried before the RetryInfo", func(e []event) Result { return gradeGoaway(e, "g") },
			[]event{{req: auth("g", 100), at: t0}, {req: auth("g", 100), at: t0.Add(10 * time.Millisecond)}}, false, "RetryInfo said 300ms"},
		{"goaway reversed instead of retried", func(e []event) Result { return gradeGoaway(e, "g") },
			[]event{{req: auth("g", 100), at: t0}, {req: &pb.ReverseRequest{OriginalRequestId: "g"}}}, false, "reversed without retrying"},
		{"rejected, then reported running", func(e []event) Result { return gradeRejected(e, 5) },
			[]event{{req: &pb.AckConfigRequest{Version: 5, Result: pb.ConfigApplyResult_CONFIG_APPLY_RESULT_REJECTED, Detail: "bad"}},
				{req: &pb.HeartbeatRequest{Status: &pb.TerminalStatus{ConfigVersion: 5}}}}, false, "reported running it"},
		{"old credential after the new one's first use", func(e []event) Result { return gradeRotation(e, codes.Unauthenticated, true, asked) },
			[]event{{method: "RotateCredential", cred: "old", streams: 1}, {method: "RotateCredential", cred: "old", issued: "new"},
				{method: "Heartbeat", cred: "new", accepted: true}, {method: "Heartbeat", cred: "old"}}, false, "old credential after the new one's first use"},
		{"rotation with no stream open", func(e []event) Result { return gradeRotation(e, codes.Unauthenticated, true, asked) },
			[]event{{method: "RotateCredential", cred: "old"}}, false, "no WatchConfig stream open"},
		{"watch not reopened after the rotation", func(e []event) Result { return gradeRotation(e, codes.Unauthenticated, true, asked) },
			[]event{{method: "RotateCredential", cred: "old", streams: 1}, {method: "RotateCredential", cred: "old", issued: "new"},
				{method: "Heartbeat", cred: "new", accepted: true}}, false, "did not reopen its config watch"},
		{"rotated on the command, acknowledged with the new credential", rotGrade,
			append(rotated, ack("new"), rewatch), true, "acknowledged it SUCCEEDED with the new credential"},
		{"rotation command acknowledged with the old credential", rotGrade,
			append(rotated, ack("old"), rewatch), false, "with the old credential"},
		{"rotation command never acknowledged", rotGrade,
			append(rotated, rewatch), false, "never acknowledged command c9"},
		{"rotated again for the same command", rotGrade,
			append(rotated, ack("new"), rewatch, event{method: "RotateCredential", cred: "new"}), false, "rotated again"},
		{"rotated on the deprecated environment variable", func(e []event) Result {
			return gradeRotation(e, codes.Unauthenticated, true, rotationAsk{id: "c9", at: 5})
		}, append(rotated, rewatch), true, "DEPRECATED"},
		{"declined refund counted", func(e []event) Result { return gradeTombstone(e, "r") },
			[]event{{req: &pb.RefundRequest{RequestId: "r", AuthorizationId: "A1"}}, {req: &pb.CloseBatchRequest{TerminalTotals: &pb.BatchTotals{RefundCount: 1}}}}, false, "the declined one was counted"},
		{"closed the wrong batch after a mismatch", gradeBatchMismatch,
			[]event{{req: &pb.CloseBatchRequest{RequestId: "c1", BatchNumber: 1}, code: codes.FailedPrecondition, reason: "BATCH_MISMATCH", meta: map[string]string{"open_batch_number": "2"}},
				{req: &pb.CloseBatchRequest{RequestId: "c2", BatchNumber: 3}, code: codes.FailedPrecondition}}, false, "closed batch 3, but the open batch is 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.grade(tc.events)
			if got.Pass != tc.pass || !strings.Contains(got.Detail, tc.detail) {
				t.Errorf("got pass=%v %q, want pass=%v with %q", got.Pass, got.Detail, tc.pass, tc.detail)
			}
		})
	}
}
