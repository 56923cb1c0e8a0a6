package server_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// TestPaymentsRecoverWithoutRestart fails every commit for a while under
// concurrent payments, as a lost database connection or a failover does,
// then lets them succeed: the payment engine comes back by itself, without
// a restart; while it is down, payments fail Unavailable with a RetryInfo
// and no answer is given for a failed commit; clients that retry with the
// same request ID end with exactly one approval each, every acknowledged
// approval is in the ledger once, and replays return the same answer.
func TestPaymentsRecoverWithoutRestart(t *testing.T) {
	f := &faults{}
	e := startFaultyEnv(t, t.TempDir(), f)
	e.merchant("M1", "S1")
	_, cred := e.registered("SN-RECOVER-1", "M1", "S1")
	pay := pb.NewPaymentServiceClient(e.conn)
	pctx := bearer(t.Context(), cred)
	hc := healthpb.NewHealthClient(e.conn)

	const workers, perWorker = 4, 25
	var (
		mu          sync.Mutex            // guards acked, unavailable, badRetry
		acked       = map[string]string{} // request ID → authorization ID
		unavailable int
		badRetry    int
	)
	faultOn := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				if w == 0 && i == perWorker/3 {
					close(faultOn)
				}
				id := fmt.Sprintf("rec-%d-%d", w, i)
				deadline := time.Now().Add(20 * time.Second)
				for {
					resp, err := pay.Authorize(pctx, saleReq(id, 100))
					if err == nil {
						if resp.GetDecision() != pb.Decision_DECISION_APPROVED {
							t.Errorf("%s: got %v %s, want approved", id, resp.GetDecision(), resp.GetResponseCode())
						}
						mu.Lock()
						acked[id] = resp.GetAuthorizationId()
						mu.Unlock()
						break
					}
					if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
						t.Errorf("%s: got %v, want an answer or Unavailable", id, err)
						return
					}
					mu.Lock()
					unavailable++
					if reason(err) == "PAYMENTS_UNAVAILABLE" && retryDelay(err) <= 0 {
						badRetry++
					}
					mu.Unlock()
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	<-faultOn
	f.set(errors.New("injected: connection to the database lost"), nil)
	// Long enough for the engine to stop and try to reopen more than once.
	time.Sleep(600 * time.Millisecond)
	h, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "posfleet.v1.PaymentService"})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("payment health while commits fail: got %v, %v; want NOT_SERVING", h.GetStatus(), err)
	}
	f.set(nil, nil)
	wg.Wait()

	if unavailable == 0 {
		t.Fatal("no call failed Unavailable while commits failed: the fault did not take")
	}
	if badRetry > 0 {
		t.Errorf("%d PAYMENTS_UNAVAILABLE answers without a RetryInfo", badRetry)
	}
	if len(acked) != workers*perWorker {
		t.Fatalf("acknowledged payments: got %d, want %d", len(acked), workers*perWorker)
	}
	waitFor(t, "payment service SERVING after recovery", func() bool {
		h, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "posfleet.v1.PaymentService"})
		return err == nil && h.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})

	// The ledger holds every acknowledged approval exactly once.
	seen := map[string]int{}
	token := ""
	for {
		resp, err := e.admin.ListTransactions(e.adminCtx(), &pb.ListTransactionsRequest{MerchantId: "M1", PageSize: 500, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, tx := range resp.GetTransactions() {
			seen[tx.GetRequestId()]++
			if want, ok := acked[tx.GetRequestId()]; !ok || want != tx.GetTransactionId() {
				t.Errorf("ledger transaction %s for %s: acknowledged as %q", tx.GetTransactionId(), tx.GetRequestId(), want)
			}
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	for id := range acked {
		if seen[id] != 1 {
			t.Errorf("%s: got %d transactions in the ledger, want 1", id, seen[id])
		}
	}
	// Replays answer from the ledger, with the acknowledged authorization.
	for _, id := range []string{"rec-0-0", fmt.Sprintf("rec-0-%d", perWorker/3), fmt.Sprintf("rec-%d-%d", workers-1, perWorker-1)} {
		resp, err := pay.Authorize(pctx, saleReq(id, 100))
		if err != nil || !resp.GetReplayed() || resp.GetAuthorizationId() != acked[id] {
			t.Errorf("replay of %s: got %v, %v; want %s replayed", id, resp, err, acked[id])
		}
	}
}

// waitFor polls cond until it holds, failing t after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
