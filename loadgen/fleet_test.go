package loadgen_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/posfleet/posfleet/client"
	"github.com/posfleet/posfleet/loadgen"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// fakeServer is a small in-memory model of a posfleet server: enough of
// the admin, terminal and payment services to exercise the fleet
// simulation, with its own ledger so that batch closes can be checked.
type fakeServer struct {
	pb.UnimplementedAdminServiceServer
	pb.UnimplementedTerminalServiceServer
	pb.UnimplementedPaymentServiceServer

	// hbDelay, set before the server starts, slows every heartbeat.
	hbDelay time.Duration

	mu        sync.Mutex // guards every field below
	merchants map[string]bool
	terms     map[string]*fakeTerm // by terminal ID
	bySerial  map[string]*fakeTerm
	byCred    map[string]*fakeTerm
	auths     map[string]*fakeAuth // by terminal ID + request ID
	byAuthID  map[string]*fakeAuth
	nextID    int
	watchers  map[string]chan *pb.WatchConfigResponse // by terminal ID
	version   uint64

	stallAuthorize time.Duration // each Authorize waits this long first
	// loseEvery makes every n-th new authorization lose its answer: it is
	// decided and recorded, but the call fails with Unavailable.
	loseEvery int
	lost      int
	// skewFirstClose makes the first batch close count one sale more than
	// the ledger holds, so that it does not balance.
	skewFirstClose bool
	closes         int
	// balanced sums the server's totals of the closes in balance;
	// timeoutReversed counts the approvals reversed with reason TIMEOUT.
	balanced        loadgen.TotalsResult
	timeoutReversed int64
}

type fakeTerm struct {
	id, serial, merchant, code, cred string
	registered                       bool
	batch                            uint64
	totals                           *pb.BatchTotals
	heartbeats                       int
}

type fakeAuth struct {
	resp         *pb.AuthorizeResponse
	id, terminal string
	amount       int64
	approved     bool
	reversed     bool
	refunded     int64
}

func newFakeServer() *fakeServer {
	return &fakeServer{
		merchants: map[string]bool{},
		terms:     map[string]*fakeTerm{},
		bySerial:  map[string]*fakeTerm{},
		byCred:    map[string]*fakeTerm{},
		auths:     map[string]*fakeAuth{},
		byAuthID:  map[string]*fakeAuth{},
		watchers:  map[string]chan *pb.WatchConfigResponse{},
	}
}

func emptyTotals() *pb.BatchTotals {
	m := func() *pb.Money { return &pb.Money{Currency: "USD"} }
	return &pb.BatchTotals{SaleAmount: m(), RefundAmount: m(), ReversalAmount: m()}
}

func (s *fakeServer) terminal(ctx context.Context) (*fakeTerm, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get("authorization")
	if len(v) != 1 || !strings.HasPrefix(v[0], "Bearer ") {
		return nil, status.Error(codes.Unauthenticated, "no credential")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.byCred[strings.TrimPrefix(v[0], "Bearer ")]
	if t == nil {
		return nil, status.Error(codes.Unauthenticated, "bad credential")
	}
	return t, nil
}

func (s *fakeServer) CreateMerchant(_ context.Context, r *pb.CreateMerchantRequest) (*pb.CreateMerchantResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.merchants[r.GetMerchant().GetMerchantId()] = true
	return &pb.CreateMerchantResponse{Merchant: r.GetMerchant()}, nil
}

func (s *fakeServer) CreateStore(_ context.Context, r *pb.CreateStoreRequest) (*pb.CreateStoreResponse, error) {
	return &pb.CreateStoreResponse{Store: r.GetStore()}, nil
}

func (s *fakeServer) ProvisionTerminal(_ context.Context, r *pb.ProvisionTerminalRequest) (*pb.ProvisionTerminalResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.merchants[r.GetMerchantId()] {
		return nil, status.Error(codes.NotFound, "merchant")
	}
	s.nextID++
	t := &fakeTerm{id: fmt.Sprintf("T%07d", s.nextID), serial: r.GetSerialNumber(), merchant: r.GetMerchantId(), code: fmt.Sprintf("code-%d", s.nextID), batch: 1, totals: emptyTotals()}
	s.terms[t.id], s.bySerial[t.serial] = t, t
	return &pb.ProvisionTerminalResponse{TerminalId: t.id, EnrollmentCode: t.code}, nil
}

func (s *fakeServer) Register(_ context.Context, r *pb.RegisterRequest) (*pb.RegisterResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.bySerial[r.GetSerialNumber()]
	if t == nil || t.code != r.GetEnrollmentCode() || t.registered {
		return nil, status.Error(codes.PermissionDenied, "enrollment")
	}
	t.registered, t.cred = true, "cred-"+t.id
	s.byCred[t.cred] = t
	return &pb.RegisterResponse{TerminalId: t.id, Credential: t.cred, Config: &pb.EffectiveConfig{Version: 1}, HeartbeatInterval: durationpb.New(200 * time.Millisecond)}, nil
}

func (s *fakeServer) Heartbeat(ctx context.Context, _ *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	t, err := s.terminal(ctx)
	if err != nil {
		return nil, err
	}
	time.Sleep(s.hbDelay)
	s.mu.Lock()
	defer s.mu.Unlock()
	t.heartbeats++
	return &pb.HeartbeatResponse{NextHeartbeat: durationpb.New(200 * time.Millisecond)}, nil
}

func (s *fakeServer) WatchConfig(_ *pb.WatchConfigRequest, stream pb.TerminalService_WatchConfigServer) error {
	t, err := s.terminal(stream.Context())
	if err != nil {
		return err
	}
	ch := make(chan *pb.WatchConfigResponse, 4)
	s.mu.Lock()
	s.watchers[t.id] = ch
	s.mu.Unlock()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case m := <-ch:
			if err := stream.Send(m); err != nil {
				return err
			}
		}
	}
}

func (s *fakeServer) AckConfig(ctx context.Context, _ *pb.AckConfigRequest) (*pb.AckConfigResponse, error) {
	if _, err := s.terminal(ctx); err != nil {
		return nil, err
	}
	return &pb.AckConfigResponse{}, nil
}

func (s *fakeServer) PublishConfig(_ context.Context, r *pb.PublishConfigRequest) (*pb.PublishConfigResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
	v := s.version + 1
	for id, ch := range s.watchers {
		if s.terms[id].merchant != r.GetScope().GetMerchantId() {
			continue
		}
		ch <- &pb.WatchConfigResponse{Version: v, Settings: r.GetSettings()}
	}
	return &pb.PublishConfigResponse{Version: v, RolloutId: fmt.Sprintf("ro-%d", s.version)}, nil
}

func (s *fakeServer) Authorize(ctx context.Context, r *pb.AuthorizeRequest) (*pb.AuthorizeResponse, error) {
	t, err := s.terminal(ctx)
	if err != nil {
		return nil, err
	}
	if s.stallAuthorize > 0 {
		time.Sleep(s.stallAuthorize)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.merchant != r.GetMerchantId() {
		return &pb.AuthorizeResponse{Decision: pb.Decision_DECISION_DECLINED, ResponseCode: "03", BatchNumber: t.batch}, nil
	}
	if a := s.auths[t.id+"/"+r.GetRequestId()]; a != nil {
		resp := proto.Clone(a.resp).(*pb.AuthorizeResponse)
		resp.Replayed = true
		return resp, nil
	}
	s.nextID++
	a := &fakeAuth{id: fmt.Sprintf("A%d", s.nextID), terminal: t.id, amount: r.GetAmount().GetMinorUnits()}
	s.auths[t.id+"/"+r.GetRequestId()], s.byAuthID[a.id] = a, a
	a.resp = &pb.AuthorizeResponse{AuthorizationId: a.id, Decision: pb.Decision_DECISION_DECLINED, ResponseCode: "05", BatchNumber: t.batch}
	if !strings.HasPrefix(r.GetCard().GetToken(), "tok_test_decline") {
		a.approved = true
		t.totals.SaleCount++
		t.totals.SaleAmount.MinorUnits += a.amount
		a.resp = &pb.AuthorizeResponse{AuthorizationId: a.id, Decision: pb.Decision_DECISION_APPROVED, ResponseCode: "00", AuthCode: "123456", BatchNumber: t.batch}
	}
	if s.loseEvery > 0 {
		if s.lost++; s.lost%s.loseEvery == 0 {
			return nil, status.Error(codes.Unavailable, "answer lost")
		}
	}
	return a.resp, nil
}

func (s *fakeServer) Reverse(ctx context.Context, r *pb.ReverseRequest) (*pb.ReverseResponse, error) {
	t, err := s.terminal(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.auths[t.id+"/"+r.GetOriginalRequestId()]
	switch {
	case a == nil:
		return &pb.ReverseResponse{Status: pb.ReverseStatus_REVERSE_STATUS_ORIGINAL_NOT_FOUND}, nil
	case a.reversed:
		return &pb.ReverseResponse{Status: pb.ReverseStatus_REVERSE_STATUS_ALREADY_REVERSED, AuthorizationId: a.id}, nil
	case !a.approved || a.refunded > 0:
		return &pb.ReverseResponse{Status: pb.ReverseStatus_REVERSE_STATUS_NOT_REVERSIBLE, AuthorizationId: a.id}, nil
	}
	a.reversed = true
	if r.GetReason() == pb.ReversalReason_REVERSAL_REASON_TIMEOUT {
		s.timeoutReversed++
	}
	t.totals.SaleCount--
	t.totals.SaleAmount.MinorUnits -= a.amount
	t.totals.ReversalCount++
	t.totals.ReversalAmount.MinorUnits += a.amount
	return &pb.ReverseResponse{Status: pb.ReverseStatus_REVERSE_STATUS_REVERSED, AuthorizationId: a.id, ReversedAmount: &pb.Money{MinorUnits: a.amount, Currency: "USD"}}, nil
}

func (s *fakeServer) Refund(ctx context.Context, r *pb.RefundRequest) (*pb.RefundResponse, error) {
	t, err := s.terminal(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.byAuthID[r.GetAuthorizationId()]
	amt := r.GetAmount().GetMinorUnits()
	if a == nil || !a.approved || a.reversed || a.terminal != t.id {
		return &pb.RefundResponse{Decision: pb.Decision_DECISION_DECLINED, ResponseCode: "12"}, nil
	}
	if amt <= 0 || amt > a.amount-a.refunded {
		return &pb.RefundResponse{Decision: pb.Decision_DECISION_DECLINED, ResponseCode: "13"}, nil
	}
	a.refunded += amt
	t.totals.RefundCount++
	t.totals.RefundAmount.MinorUnits += amt
	return &pb.RefundResponse{Decision: pb.Decision_DECISION_APPROVED, ResponseCode: "00", BatchNumber: t.batch}, nil
}

func (s *fakeServer) CloseBatch(ctx context.Context, r *pb.CloseBatchRequest) (*pb.CloseBatchResponse, error) {
	t, err := s.terminal(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.GetBatchNumber() != t.batch {
		return nil, status.Error(codes.FailedPrecondition, "BATCH_MISMATCH")
	}
	st, tt := t.totals, r.GetTerminalTotals()
	if s.closes++; s.skewFirstClose && s.closes == 1 {
		st.SaleCount++
	}
	in := st.SaleCount == tt.GetSaleCount() && st.SaleAmount.MinorUnits == tt.GetSaleAmount().GetMinorUnits() &&
		st.RefundCount == tt.GetRefundCount() && st.RefundAmount.MinorUnits == tt.GetRefundAmount().GetMinorUnits() &&
		st.ReversalCount == tt.GetReversalCount() && st.ReversalAmount.MinorUnits == tt.GetReversalAmount().GetMinorUnits()
	if in {
		s.balanced.SaleCount += st.SaleCount
		s.balanced.SaleAmount += st.SaleAmount.MinorUnits
		s.balanced.RefundCount += st.RefundCount
		s.balanced.RefundAmount += st.RefundAmount.MinorUnits
		s.balanced.ReversalCount += st.ReversalCount
		s.balanced.ReversalAmount += st.ReversalAmount.MinorUnits
	}
	resp := &pb.CloseBatchResponse{BatchNumber: t.batch, ServerTotals: st, InBalance: in, NextBatchNumber: t.batch + 1}
	t.batch++
	t.totals = emptyTotals()
	return resp, nil
}

func (s *fakeServer) GetOpenBatch(ctx context.Context, _ *pb.GetOpenBatchRequest) (*pb.GetOpenBatchResponse, error) {
	t, err := s.terminal(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &pb.GetOpenBatchResponse{BatchNumber: t.batch, ServerTotals: proto.Clone(t.totals).(*pb.BatchTotals)}, nil
}

// approvals counts the approved authorizations.
func (s *fakeServer) approvals() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, a := range s.auths {
		if a.approved {
			n++
		}
	}
	return n
}

// startFake serves s on loopback and returns an admin client and n
// terminal clients.
func startFake(t *testing.T, s *fakeServer, n int) (*client.Client, []*client.Client) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterAdminServiceServer(srv, s)
	pb.RegisterTerminalServiceServer(srv, s)
	pb.RegisterPaymentServiceServer(srv, s)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	dial := func() *client.Client {
		c, err := client.Dial(lis.Addr().String(), client.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	admin := dial()
	var conns []*client.Client
	for range n {
		conns = append(conns, dial())
	}
	return admin, conns
}

func runFleet(t *testing.T, s *fakeServer, fc loadgen.FleetConfig, p loadgen.Profile, conns int) *loadgen.Result {
	t.Helper()
	admin, cc := startFake(t, s, conns)
	fleet, err := loadgen.NewFleet(fc, admin, cc, nil)
	if err != nil {
		t.Fatal(err)
	}
	run, err := loadgen.NewRun(loadgen.Config{Profile: p, Users: fc.Terminals, Seed: 9, OnEvent: fleet.OnEvent, Info: fleet.Info()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := fleet.Run(t.Context(), run); err != nil {
		t.Fatal(err)
	}
	return run.Finish()
}

func TestFleetMixAndBatchesBalance(t *testing.T) {
	t.Parallel()
	s := newFakeServer()
	p := steady(150, 1500*time.Millisecond)
	p.Events = []loadgen.Event{{At: 300 * time.Millisecond, Action: loadgen.EventPublishConfig}}
	res := runFleet(t, s, loadgen.FleetConfig{
		Terminals:     12,
		Merchants:     3,
		Mix:           loadgen.Mix{loadgen.TxApprove: 40, loadgen.TxDecline: 20, loadgen.TxReverse: 20, loadgen.TxRefund: 20},
		DeclineTokens: []string{"tok_test_decline_05"},
		Seed:          4,
		RunID:         "T1",
	}, p, 4)

	for _, op := range []string{loadgen.OpCreateMerchant, loadgen.OpCreateStore, loadgen.OpProvision, loadgen.OpRegister, loadgen.OpAuthorize, loadgen.OpReverse, loadgen.OpRefund, loadgen.OpHeartbeat, loadgen.OpCloseBatch, loadgen.OpPublishConfig} {
		o := res.Op(op)
		if o == nil || o.Count == 0 {
			t.Errorf("op %s: no calls recorded", op)
			continue
		}
		if o.Errors != 0 {
			t.Errorf("op %s: got %d errors (%+v), want 0", op, o.Errors, o.Outcomes)
		}
	}
	for _, op := range []string{loadgen.OpWatch, loadgen.OpAckConfig} {
		if o := res.Op(op); o != nil {
			t.Errorf("%s: %d failures: %+v", op, o.Count, o.Outcomes)
		}
	}
	if got := res.Op(loadgen.OpCreateMerchant).Count; got != 3 {
		t.Errorf("merchants created: got %d, want 3", got)
	}
	if got := res.Op(loadgen.OpRegister).Count; got != 12 {
		t.Errorf("registrations: got %d, want 12", got)
	}
	// Every batch close balanced: the fleet's bookkeeping of sales,
	// reversals and refunds matches the server's ledger.
	if cb := res.Op(loadgen.OpCloseBatch); cb.OK != cb.Count {
		t.Errorf("batch closes: got %d of %d in balance (%+v)", cb.OK, cb.Count, cb.Outcomes)
	}
	auth := res.Op(loadgen.OpAuthorize)
	var declined05 int64
	for _, o := range auth.Outcomes {
		if o.Outcome == "declined:05" {
			declined05 = o.Count
		}
	}
	if declined05 == 0 || auth.Declined != declined05 {
		t.Errorf("test-card declines: got %d declined:05 of %d declines", declined05, auth.Declined)
	}
	txn := res.Op(loadgen.OpTxn)
	if txn.Count != res.Generator.Issued {
		t.Errorf("transactions: got %d, want one per arrival (%d)", txn.Count, res.Generator.Issued)
	}
	ro := res.Rollout
	if ro == nil {
		t.Fatal("no rollout measurement")
	}
	if ro.Terminals != 12 || ro.Reached != 12 || ro.AllReachedMs == nil {
		t.Errorf("rollout: got %d of %d reached (all %v), want 12 of 12", ro.Reached, ro.Terminals, ro.AllReachedMs)
	}
	if ro.Error != "" || ro.RolloutID == "" {
		t.Errorf("rollout: id %q error %q", ro.RolloutID, ro.Error)
	}
	for k, want := range map[string]string{"terminals": "12", "merchants": "3", "run_id": "T1"} {
		if got := res.Info[k]; got != want {
			t.Errorf("info %s: got %q, want %q", k, got, want)
		}
	}
}

func TestFleetLostAnswersStillBalance(t *testing.T) {
	t.Parallel()
	// Every fifth authorization is decided but its answer is lost. With
	// retries the client SDK gets the stored answer on the next try; with
	// one attempt it reverses the authorization. Either way the terminals'
	// batches must balance with the server's ledger.
	tests := []struct {
		attempts   int
		wantErrors bool
	}{{attempts: 1, wantErrors: true}, {attempts: 4, wantErrors: false}}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("attempts=%d", tt.attempts), func(t *testing.T) {
			t.Parallel()
			s := newFakeServer()
			s.loseEvery = 5
			res := runFleet(t, s, loadgen.FleetConfig{
				Terminals: 6,
				Mix:       loadgen.Mix{loadgen.TxApprove: 70, loadgen.TxRefund: 30},
				NoWatch:   true,
				Attempts:  tt.attempts,
				RunID:     "T4",
			}, steady(80, time.Second), 6)
			auth := res.Op(loadgen.OpAuthorize)
			if auth == nil {
				t.Fatal("no authorizations")
			}
			if got := auth.Errors > 0; got != tt.wantErrors {
				t.Errorf("authorize errors: got %d (%+v), want errors: %v", auth.Errors, auth.Outcomes, tt.wantErrors)
			}
			if cb := res.Op(loadgen.OpCloseBatch); cb == nil || cb.OK != 6 || cb.Errors != 0 {
				t.Errorf("batch closes: got %+v, want 6 in balance", cb)
			}
		})
	}
}

// TestFleetReportsBatches: the report's account of the batch closes adds
// up with the server's ledger, to the unit: the balanced totals are the
// server's totals of the batches that balanced, an unbalanced close is
// counted apart, and the approvals the server made are those the
// terminals were told of plus those whose answer was lost and which the
// SDK reversed.
func TestFleetReportsBatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		attempts int
		skew     bool
	}{
		{name: "retries", attempts: 4},
		{name: "lost answers reversed", attempts: 1},
		{name: "one close out of balance", attempts: 4, skew: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newFakeServer()
			s.loseEvery = 5
			s.skewFirstClose = tt.skew
			res := runFleet(t, s, loadgen.FleetConfig{
				Terminals:     6,
				Mix:           loadgen.Mix{loadgen.TxApprove: 50, loadgen.TxDecline: 10, loadgen.TxReverse: 20, loadgen.TxRefund: 20},
				DeclineTokens: []string{"tok_test_decline_05"},
				NoWatch:       true,
				Attempts:      tt.attempts,
				RunID:         "T7",
			}, steady(80, time.Second), 6)
			b := res.Batches
			if b == nil {
				t.Fatal("no batch account in the report")
			}
			wantOut := int64(0)
			if tt.skew {
				wantOut = 1
			}
			if b.Closed != 6 || b.OutOfBalance != wantOut || b.InBalance != 6-wantOut || b.Failed != 0 {
				t.Errorf("closes: got %+v, want 6 closed, %d out of balance", b, wantOut)
			}
			if cb := res.Op(loadgen.OpCloseBatch); cb == nil || cb.Errors != wantOut {
				t.Errorf("close_batch op: got %+v, want %d errors", cb, wantOut)
			}
			s.mu.Lock()
			balanced, reversed := s.balanced, s.timeoutReversed
			s.mu.Unlock()
			if b.Balanced != balanced {
				t.Errorf("balanced totals: got %+v, want the server's %+v", b.Balanced, balanced)
			}
			if balanced.SaleCount == 0 || balanced.RefundCount == 0 || balanced.ReversalCount == 0 {
				t.Errorf("balanced totals %+v: want sales, refunds and reversals", balanced)
			}
			if b.UnknownReversed != reversed {
				t.Errorf("unknown approvals reversed: got %d, want the server's %d", b.UnknownReversed, reversed)
			}
			if (reversed > 0) != (tt.attempts == 1) {
				t.Errorf("approvals reversed after a lost answer: got %d with %d attempts", reversed, tt.attempts)
			}
			if got, want := res.Op(loadgen.OpAuthorize).OK+b.UnknownReversed, s.approvals(); got != want {
				t.Errorf("approvals answered + reversed unanswered: got %d, want the server's %d", got, want)
			}
		})
	}
}

func TestFleetRegistrationStorm(t *testing.T) {
	t.Parallel()
	s := newFakeServer()
	p, err := loadgen.Builtin(loadgen.ProfileRegistrationStorm, 40, time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	res := runFleet(t, s, loadgen.FleetConfig{Terminals: 20, Mix: loadgen.Mix{loadgen.TxApprove: 1}, NoWatch: true, RunID: "T2"}, p, 20)
	var storm *loadgen.StageResult
	for i := range res.Stages {
		if res.Stages[i].Name == "storm" {
			storm = &res.Stages[i]
		}
	}
	if storm == nil {
		t.Fatal("no storm stage")
	}
	var reg *loadgen.StageOp
	for i := range storm.Ops {
		if storm.Ops[i].Name == loadgen.OpRegister {
			reg = &storm.Ops[i]
		}
	}
	if reg == nil || reg.Count != 20 || reg.Errors != 0 {
		t.Fatalf("storm registrations: got %+v, want 20 without errors", reg)
	}
	for _, st := range res.Stages {
		if st.Kind != "setup" {
			continue
		}
		for _, o := range st.Ops {
			if o.Name == loadgen.OpRegister {
				t.Errorf("registrations in setup: got %d, want none (the storm registers)", o.Count)
			}
		}
	}
	if a := res.Op(loadgen.OpAuthorize); a == nil || a.OK == 0 {
		t.Errorf("no approvals after the storm: %+v", a)
	}
}

func TestFleetQueueingCountsAsLatency(t *testing.T) {
	t.Parallel()
	// One terminal and a server taking 40ms per authorization, offered 50
	// per second: the terminal cannot keep up, arrivals queue behind it and
	// their latency (from the intended time) grows well past the service
	// time, as at a real checkout.
	s := newFakeServer()
	s.stallAuthorize = 40 * time.Millisecond
	p := loadgen.Profile{Name: "busy", Stages: []loadgen.Stage{{Name: "busy", Duration: time.Second, From: 50, To: 50}}}
	res := runFleet(t, s, loadgen.FleetConfig{Terminals: 1, Mix: loadgen.Mix{loadgen.TxApprove: 1}, NoWatch: true, RunID: "T3"}, p, 1)
	txn := res.Op(loadgen.OpTxn)
	if txn == nil || txn.Count == 0 {
		t.Fatal("no transactions")
	}
	if txn.Latency.P99 < 4*txn.Service.P50 {
		t.Errorf("txn latency p99 %vms vs service p50 %vms: queueing behind the busy terminal is not counted", txn.Latency.P99, txn.Service.P50)
	}
	if txn.SendLag.Max < 100 {
		t.Errorf("txn send-lag max: got %vms, want at least 100ms of queueing", txn.SendLag.Max)
	}
}

func TestFleetConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     loadgen.FleetConfig
		wantErr string
	}{
		{"no terminals", loadgen.FleetConfig{}, "Terminals"},
		{"empty decline token", loadgen.FleetConfig{Terminals: 1, DeclineTokens: []string{""}}, "decline token"},
		{"bad run id", loadgen.FleetConfig{Terminals: 1, RunID: "no-dash"}, "RunID"},
		{"amounts", loadgen.FleetConfig{Terminals: 1, MinAmount: 50, MaxAmount: 10}, "amounts"},
		{"too many merchants", loadgen.FleetConfig{Terminals: 2, Merchants: 3}, "Merchants"},
		{"bad mix", loadgen.FleetConfig{Terminals: 1, Mix: loadgen.Mix{"steal": 1}}, "unknown kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	if err := (loadgen.FleetConfig{Terminals: 5}).Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
}

func TestParseMix(t *testing.T) {
	m, err := loadgen.ParseMix("approve=80, decline=10,reverse=5,refund=5")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.String(), "approve=80,decline=10,refund=5,reverse=5"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"approve", "approve=x", "approve=1,approve=2", "approve=0", "approve=-1,refund=2", "shoplift=3"} {
		if _, err := loadgen.ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q) accepted", bad)
		}
	}
}

// Heartbeats still in flight when the run ends are answered and recorded
// as such, not cut off by the fleet and counted as errors.
func TestFleetLetsHeartbeatsInFlightFinish(t *testing.T) {
	t.Parallel()
	s := newFakeServer()
	s.hbDelay = 150 * time.Millisecond
	res := runFleet(t, s, loadgen.FleetConfig{
		Terminals:         6,
		Merchants:         1,
		Mix:               loadgen.Mix{loadgen.TxApprove: 1},
		HeartbeatInterval: 10 * time.Millisecond,
		Seed:              7,
		RunID:             "HB",
	}, steady(50, 400*time.Millisecond), 2)
	o := res.Op(loadgen.OpHeartbeat)
	if o == nil || o.Count == 0 {
		t.Fatal("no heartbeats recorded")
	}
	if o.Errors != 0 {
		t.Errorf("heartbeat: %d errors (%+v), want 0", o.Errors, o.Outcomes)
	}
}
