package crash_test

import (
	"fmt"
	"path/filepath"
	"testing"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/test/internal/workload"
)

// TestMismatchAlertSurvivesSIGKILL has a terminal claim merchants it is
// not bound to and kills the real binary with SIGKILL as soon as the last
// claim is answered. After a restart every answered claim has its
// MERCHANT_MISMATCH event (the merchant_mismatch webhook's source): the
// alert is on disk before the answer leaves, not in a batch written later.
func TestMismatchAlertSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	const rounds, claims = 3, 4
	bin := workload.BuildBinary(t)
	dir := t.TempDir()
	tokenFile := workload.TokenFile(t, dir)
	dataDir := filepath.Join(dir, "data")
	ctx := t.Context()

	p := workload.Start(t, bin, dataDir, tokenFile)
	var h workload.History
	h.Setup(ctx, t, p.Addr, 1)
	var answered []string
	for round := range rounds {
		term := workload.Dial(t, p.Addr, h.Terms[0].Cred)
		for n := range claims {
			claim := fmt.Sprintf("X%dN%d", round, n) // each claim new: none coalesced
			resp, err := term.VerifyMerchant(ctx, claim)
			if err != nil || resp.GetMatches() {
				t.Fatalf("VerifyMerchant(%s): %v, %v; want matches false", claim, resp, err)
			}
			answered = append(answered, claim)
		}
		p.Kill()
		term.Close()
		p = workload.Start(t, bin, dataDir, tokenFile)
	}

	admin := workload.Dial(t, p.Addr, workload.AdminToken)
	evs, err := admin.AuditEvents(ctx, &pb.ListAuditEventsRequest{Type: pb.AuditEventType_AUDIT_EVENT_TYPE_MERCHANT_MISMATCH}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, ev := range evs {
		have[ev.GetAttributes()["claimed_merchant_id"]] = true
	}
	for _, claim := range answered {
		if !have[claim] {
			t.Errorf("claim of %s was answered before SIGKILL but has no MERCHANT_MISMATCH event after restart", claim)
		}
	}
}
