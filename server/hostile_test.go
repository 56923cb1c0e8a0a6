package server_test

import (
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// retryDelay returns the RetryInfo delay of err, or 0.
func retryDelay(err error) time.Duration {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

// assertRateLimited fails unless err is ResourceExhausted RATE_LIMITED with
// a positive RetryInfo.
func assertRateLimited(t *testing.T, what string, err error) {
	t.Helper()
	if status.Code(err) != codes.ResourceExhausted || reason(err) != "RATE_LIMITED" || retryDelay(err) <= 0 {
		t.Fatalf("%s: %v (reason %q, retry %v), want ResourceExhausted RATE_LIMITED with a RetryInfo", what, err, reason(err), retryDelay(err))
	}
}

// A terminal rotating its credential in a loop used to add an audit event
// per call (47,289 in 10 s). Its credential quota stops it after the burst,
// with a RetryInfo, while another terminal behind the same address keeps
// working.
func TestRotateCredentialFloodIsBoundedPerCredential(t *testing.T) {
	e := newFleetEnv(t)
	e.merchant("MID1", "s1")
	_, cred := e.registered("SN-FLOOD", "MID1", "s1")
	_, other := e.registered("SN-OTHER", "MID1", "s1")
	rotated := 0
	var err error
	for range 200 {
		var resp *pb.RotateCredentialResponse
		resp, err = e.term.RotateCredential(bearer(t.Context(), cred), &pb.RotateCredentialRequest{})
		if err != nil {
			break
		}
		cred = resp.GetCredential()
		rotated++
	}
	assertRateLimited(t, "RotateCredential flood", err)
	if rotated > 5 {
		t.Errorf("rotations before the limit = %d, want at most the burst of 5", rotated)
	}
	if n := len(e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_CREDENTIAL_ROTATED)); n != rotated {
		t.Errorf("rotation audit events = %d, want %d", n, rotated)
	}
	if _, err := e.term.RotateCredential(bearer(t.Context(), other), &pb.RotateCredentialRequest{}); err != nil {
		t.Errorf("another terminal's rotation during the flood: %v", err)
	}
	if _, err := e.term.Heartbeat(bearer(t.Context(), cred), &pb.HeartbeatRequest{Status: &pb.TerminalStatus{}}); err != nil {
		t.Errorf("the limited terminal's heartbeat (another class): %v", err)
	}
}

// A VerifyMerchant flood with a wrong merchant used to store one alert per
// call (129,165 in 20 s). The identity quota bounds the calls, and the
// alerts of one terminal and claimed merchant are coalesced into one event
// per window carrying the count.
func TestMerchantMismatchFloodIsCoalesced(t *testing.T) {
	e := newFleetEnv(t)
	e.merchant("MID1", "s1")
	e.merchant("MID2", "s1")
	_, cred := e.registered("SN-MM", "MID1", "s1")
	_, other := e.registered("SN-MM2", "MID1", "s1")
	const calls = 300
	var answered, limited int
	for range calls {
		resp, err := e.term.VerifyMerchant(bearer(t.Context(), cred), &pb.VerifyMerchantRequest{ClaimedMerchantId: "MID2"})
		switch {
		case err == nil && !resp.GetMatches():
			answered++
		case status.Code(err) == codes.ResourceExhausted:
			assertRateLimited(t, "VerifyMerchant flood", err)
			limited++
		default:
			t.Fatalf("VerifyMerchant: %v, matches %v", err, resp.GetMatches())
		}
	}
	if limited == 0 {
		t.Errorf("%d mismatching VerifyMerchant calls, none rate limited", calls)
	}
	evs := e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_MERCHANT_MISMATCH)
	if len(evs) != 1 {
		t.Fatalf("mismatch events after %d answered calls = %d, want 1 per window", answered, len(evs))
	}
	// The other terminal's claim is a separate alert, not hidden by the
	// flood.
	if resp, err := e.term.VerifyMerchant(bearer(t.Context(), other), &pb.VerifyMerchantRequest{ClaimedMerchantId: "MID2"}); err != nil || resp.GetMatches() {
		t.Fatalf("other terminal's VerifyMerchant: %v, matches %v", err, resp.GetMatches())
	}
	if n := len(e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_MERCHANT_MISMATCH)); n != 2 {
		t.Errorf("mismatch events after another terminal's claim = %d, want 2", n)
	}
}
