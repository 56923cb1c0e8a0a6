package client_test

import (
	"context"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// flakyCaptures fails the first Capture with Unavailable and records the
// request IDs it was sent.
type flakyCaptures struct {
	pb.UnimplementedPaymentServiceServer
	mu  sync.Mutex // guards ids
	ids []string
}

func (f *flakyCaptures) Capture(_ context.Context, req *pb.CaptureRequest) (*pb.CaptureResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = append(f.ids, req.GetRequestId())
	if len(f.ids) == 1 {
		return nil, status.Error(codes.Unavailable, "try again")
	}
	return &pb.CaptureResponse{CaptureId: "C1", Decision: pb.Decision_DECISION_APPROVED, ResponseCode: "00"}, nil
}

func TestCaptureRetriesWithTheSameRequestID(t *testing.T) {
	f := &flakyCaptures{}
	resp, err := startFake(t, f).Capture(t.Context(), &pb.CaptureRequest{AuthorizationId: "A1", Amount: &pb.Money{MinorUnits: 1, Currency: "NZD"}})
	if err != nil || resp.GetResponseCode() != "00" {
		t.Fatalf("Capture: got %v, %v; want 00 after a retry", resp, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.ids) != 2 || f.ids[0] == "" || f.ids[0] != f.ids[1] {
		t.Errorf("request IDs sent: got %q, want the same generated ID twice", f.ids)
	}
}

// registeredTerminal starts a server, registers the terminal serial on it
// and returns a client with its credential.
func registeredTerminal(t *testing.T, serial string) *client.Client {
	t.Helper()
	_, _, _, term := registerOn(t, serial)
	return term
}

func TestCaptureAgainstServer(t *testing.T) {
	term := registeredTerminal(t, "SN-1")
	ctx := t.Context()
	held := payReq()
	held.Capture = false
	h, err := term.Authorize(ctx, held)
	if err != nil || h.GetResponseCode() != "00" {
		t.Fatalf("pre-auth: got %v, %v", h, err)
	}
	req := &pb.CaptureRequest{AuthorizationId: h.GetAuthorizationId(), Amount: &pb.Money{MinorUnits: 60, Currency: "NZD"}}
	c, err := term.Capture(ctx, req)
	if err != nil || c.GetResponseCode() != "00" || c.GetReleasedAmount().GetMinorUnits() != 40 || req.GetRequestId() == "" {
		t.Fatalf("Capture: got %v, %v (request_id %q); want 00 releasing 40", c, err, req.GetRequestId())
	}
	if again, err := term.Capture(ctx, req); err != nil || !again.GetReplayed() || again.GetCaptureId() != c.GetCaptureId() {
		t.Errorf("same capture again: got %v, %v; want a replay", again, err)
	}
	ob, err := term.OpenBatch(ctx)
	if err != nil || ob.GetBatchNumber() != 1 || ob.GetServerTotals().GetSaleAmount().GetMinorUnits() != 60 {
		t.Errorf("OpenBatch: got %v, %v; want batch 1 with a 60 sale", ob, err)
	}
}
