package client_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/server/pan"
)

// fakePayments answers Authorize from a script of failures and records
// every request.
type fakePayments struct {
	pb.UnimplementedPaymentServiceServer

	mu sync.Mutex // guards the fields below
	// authFail are the errors of the next Authorize calls (nil: answer;
	// errHang: wait for the call's deadline instead).
	authFail []error
	// revFail are the errors of the next Reverse calls; revStatus is the
	// answer's status (REVERSED when unset).
	revFail   []error
	revStatus pb.ReverseStatus
	auths     []*pb.AuthorizeRequest
	reverses  []*pb.ReverseRequest
}

var errHang = errors.New("hang")

func (f *fakePayments) Authorize(ctx context.Context, req *pb.AuthorizeRequest) (*pb.AuthorizeResponse, error) {
	f.mu.Lock()
	f.auths = append(f.auths, req)
	var err error
	if len(f.authFail) > 0 {
		err, f.authFail = f.authFail[0], f.authFail[1:]
	}
	f.mu.Unlock()
	if err == errHang {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if err != nil {
		return nil, err
	}
	return &pb.AuthorizeResponse{AuthorizationId: "A1", Decision: pb.Decision_DECISION_APPROVED, ResponseCode: "00", AuthCode: "ABC123"}, nil
}

func (f *fakePayments) Reverse(ctx context.Context, req *pb.ReverseRequest) (*pb.ReverseResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reverses = append(f.reverses, req)
	if len(f.revFail) > 0 {
		err := f.revFail[0]
		f.revFail = f.revFail[1:]
		if err != nil {
			return nil, err
		}
	}
	st := f.revStatus
	if st == pb.ReverseStatus_REVERSE_STATUS_UNSPECIFIED {
		st = pb.ReverseStatus_REVERSE_STATUS_REVERSED
	}
	return &pb.ReverseResponse{Status: st, AuthorizationId: "A1"}, nil
}

func startFake(t *testing.T, f pb.PaymentServiceServer) *client.Client {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterPaymentServiceServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	c, err := client.Dial(lis.Addr().String(), client.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// shortTry bounds the tries of the tests where the fake server hangs: long
// enough that every try reaches the fake and is answered well within it on a
// loaded machine under -race (a try cut off on its way would leave the fake's
// counts short of the client's tries), short enough to keep the tests quick.
const shortTry = time.Second

// authorizeWithShortTries authorizes payReq through a client of f whose
// tries time out after shortTry, so that a hanging try is soon uncertain.
func (f *fakePayments) authorizeWithShortTries(t *testing.T) (*pb.AuthorizeResponse, error) {
	p := fastRetry
	p.AttemptTimeout = shortTry
	return startFake(t, f).AuthorizeWithPolicy(t.Context(), payReq(), p)
}

var fastRetry = client.RetryPolicy{
	Attempts:        3,
	AttemptTimeout:  2 * time.Second,
	MinBackoff:      time.Millisecond,
	MaxBackoff:      5 * time.Millisecond,
	ReversalTimeout: 10 * time.Second,
}

func payReq() *pb.AuthorizeRequest {
	return &pb.AuthorizeRequest{MerchantId: "M1", Amount: &pb.Money{MinorUnits: 100, Currency: "NZD"},
		Card: &pb.Card{Token: "tok_1", EntryMode: pb.EntryMode_ENTRY_MODE_CHIP}, Capture: true}
}

func TestAuthorizeRetries(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "restarting")
	tests := []struct {
		name string
		fail []error
		// wantTries Authorize calls; wantReversal whether the client reversed.
		wantTries    int
		wantCode     codes.Code
		wantUnknown  bool
		wantReversal bool
	}{
		{name: "answered at once", wantTries: 1},
		{name: "transient then answered", fail: []error{unavailable, status.Error(codes.ResourceExhausted, "slow down")}, wantTries: 3},
		{name: "definite refusal is not retried", fail: []error{status.Error(codes.InvalidArgument, "bad card")}, wantTries: 1, wantCode: codes.InvalidArgument},
		{name: "unauthenticated is not retried", fail: []error{status.Error(codes.Unauthenticated, "who")}, wantTries: 1, wantCode: codes.Unauthenticated},
		{name: "still unavailable: reversed", fail: []error{unavailable, unavailable, unavailable}, wantTries: 3, wantUnknown: true, wantReversal: true},
		{name: "internal error: reversed", fail: []error{status.Error(codes.Internal, "oops")}, wantTries: 1, wantUnknown: true, wantReversal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakePayments{authFail: tt.fail}
			c := startFake(t, f)
			req := payReq()
			resp, err := c.AuthorizeWithPolicy(t.Context(), req, fastRetry)
			var unknown *client.OutcomeUnknownError
			switch {
			case tt.wantUnknown:
				if !errors.As(err, &unknown) || unknown.Reversal.GetStatus() != pb.ReverseStatus_REVERSE_STATUS_REVERSED {
					t.Fatalf("got %v, %v; want an OutcomeUnknownError after a reversal", resp, err)
				}
			case tt.wantCode != codes.OK:
				if status.Code(err) != tt.wantCode || errors.As(err, &unknown) {
					t.Fatalf("got %v, want %v", err, tt.wantCode)
				}
			default:
				if err != nil || resp.GetResponseCode() != "00" {
					t.Fatalf("got %v, %v; want the approval", resp, err)
				}
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.auths) != tt.wantTries {
				t.Errorf("tries: got %d, want %d", len(f.auths), tt.wantTries)
			}
			for i, a := range f.auths {
				if a.GetRequestId() != req.GetRequestId() || a.GetRequestId() == "" {
					t.Errorf("try %d: request_id %q, want the same non-empty %q every time", i, a.GetRequestId(), req.GetRequestId())
				}
			}
			if got := len(f.reverses) > 0; got != tt.wantReversal {
				t.Fatalf("reversed: got %v, want %v", got, tt.wantReversal)
			}
			if tt.wantReversal {
				r := f.reverses[0]
				if r.GetOriginalRequestId() != req.GetRequestId() || r.GetReason() != pb.ReversalReason_REVERSAL_REASON_TIMEOUT ||
					r.GetRequestId() != client.ReversalRequestID(req.GetRequestId()) {
					t.Errorf("reversal: got %v, want TIMEOUT of %s", r, req.GetRequestId())
				}
			}
		})
	}
}

func TestAuthorizeTimeoutIsRetriedThenReversed(t *testing.T) {
	// Every try hangs past its deadline; the reversal itself first meets an
	// outage, then goes through — with the same reversal request_id.
	f := &fakePayments{authFail: []error{errHang, errHang}, revFail: []error{status.Error(codes.Unavailable, "down"), nil}}
	c := startFake(t, f)
	p := fastRetry
	p.Attempts, p.AttemptTimeout = 2, shortTry
	req := payReq()
	req.RequestId = "fixed-1"
	_, err := c.AuthorizeWithPolicy(t.Context(), req, p)
	var unknown *client.OutcomeUnknownError
	if !errors.As(err, &unknown) || status.Code(unknown.Err) != codes.DeadlineExceeded || unknown.RequestID != "fixed-1" {
		t.Fatalf("got %v, want an OutcomeUnknownError after DeadlineExceeded", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.auths) != 2 || len(f.reverses) != 2 || f.reverses[0].GetRequestId() != f.reverses[1].GetRequestId() {
		t.Errorf("got %d tries and reversals %v; want 2 tries and 2 identical reversals", len(f.auths), f.reverses)
	}
}

func TestAuthorizeReversesWhenCallerGivesUp(t *testing.T) {
	f := &fakePayments{authFail: []error{errHang}}
	c := startFake(t, f)
	ctx, cancel := context.WithCancel(t.Context())
	p := fastRetry
	p.AttemptTimeout = time.Minute
	done := make(chan error, 1)
	go func() {
		_, err := c.AuthorizeWithPolicy(ctx, payReq(), p)
		done <- err
	}()
	for {
		f.mu.Lock()
		n := len(f.auths)
		f.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	err := <-done
	var unknown *client.OutcomeUnknownError
	if !errors.As(err, &unknown) || unknown.Reversal == nil {
		t.Fatalf("got %v, want a reversal even though the caller gave up", err)
	}
}

// TestRequestIDsPassServerChecks checks that the IDs the client makes up are
// fresh or stable as they should be, and are never refused by the server's
// check for card numbers, which random hex strings fail about once in 600.
func TestRequestIDsPassServerChecks(t *testing.T) {
	canonical := func(id string, version byte) bool {
		if len(id) != 36 || id[14] != version || !strings.ContainsAny(id[19:20], "89ab") {
			return false
		}
		for i, c := range id {
			if (i == 8 || i == 13 || i == 18 || i == 23) != (c == '-') || (c != '-' && !strings.ContainsRune("0123456789abcdef", c)) {
				return false
			}
		}
		return true
	}
	seen := map[string]bool{}
	for i := range 20_000 {
		id := client.NewRequestID()
		if !canonical(id, '4') || seen[id] {
			t.Fatalf("NewRequestID: got %q, want a fresh UUIDv4", id)
		}
		seen[id] = true
		rev := client.ReversalRequestID(id)
		if !canonical(rev, '8') || seen[rev] {
			t.Fatalf("ReversalRequestID(%q): got %q, want a fresh UUIDv8", id, rev)
		}
		seen[rev] = true
		for _, x := range []string{id, rev} {
			if pan.Contains(x) {
				t.Fatalf("the server would refuse request_id %q as a card number", x)
			}
		}
		if i == 0 && client.ReversalRequestID(id) != rev {
			t.Fatalf("ReversalRequestID(%q) is not stable", id)
		}
	}
	if a, b := client.ReversalRequestID("x"), client.ReversalRequestID("x"); a != b || a == client.ReversalRequestID("y") {
		t.Errorf("ReversalRequestID: got %q and %q, want equal and specific", a, b)
	}
}

func TestPaymentsAgainstServer(t *testing.T) {
	addr, admin, enrollment := fleetServer(t, "SN-1")
	ctx := t.Context()
	reg, err := admin.Register(ctx, "SN-1", enrollment, &pb.DeviceInfo{Model: "A920"})
	if err != nil {
		t.Fatal(err)
	}
	term, err := client.Dial(addr, client.WithInsecure(), client.WithBearer(reg.GetCredential()))
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()

	req := payReq()
	a, err := term.Authorize(ctx, req)
	if err != nil || a.GetResponseCode() != "00" || req.GetRequestId() == "" {
		t.Fatalf("Authorize: got %v, %v (request_id %q)", a, err, req.GetRequestId())
	}
	if again, err := term.Authorize(ctx, req); err != nil || !again.GetReplayed() || again.GetAuthorizationId() != a.GetAuthorizationId() {
		t.Errorf("same request again: got %v, %v; want a replay", again, err)
	}
	ref, err := term.Refund(ctx, &pb.RefundRequest{AuthorizationId: a.GetAuthorizationId(), Amount: &pb.Money{MinorUnits: 40, Currency: "NZD"}})
	if err != nil || ref.GetResponseCode() != "00" || ref.GetRemainingRefundable().GetMinorUnits() != 60 {
		t.Errorf("Refund: got %v, %v", ref, err)
	}
	held := payReq()
	held.Capture = false
	h, err := term.Authorize(ctx, held)
	if err != nil || h.GetResponseCode() != "00" {
		t.Fatalf("pre-auth: got %v, %v", h, err)
	}
	rev, err := term.Reverse(ctx, &pb.ReverseRequest{OriginalRequestId: held.GetRequestId(), Reason: pb.ReversalReason_REVERSAL_REASON_CUSTOMER_CANCEL})
	if err != nil || rev.GetStatus() != pb.ReverseStatus_REVERSE_STATUS_REVERSED {
		t.Errorf("Reverse: got %v, %v", rev, err)
	}
	closed, err := term.CloseBatch(ctx, &pb.CloseBatchRequest{BatchNumber: 1, TerminalTotals: &pb.BatchTotals{
		SaleCount: 1, SaleAmount: &pb.Money{MinorUnits: 100, Currency: "NZD"},
		RefundCount: 1, RefundAmount: &pb.Money{MinorUnits: 40, Currency: "NZD"},
		ReversalCount: 1, ReversalAmount: &pb.Money{MinorUnits: 100, Currency: "NZD"},
	}})
	if err != nil || !closed.GetInBalance() {
		t.Errorf("CloseBatch: got %v, %v; want in balance", closed, err)
	}
}

// A try whose answer was lost may have been approved: a later try refused
// outright does not prove otherwise, so the client still reverses. It used
// to return the refusal and leave the approval standing.
func TestLostAnswerThenRefusalStillReverses(t *testing.T) {
	for _, later := range []error{
		status.Error(codes.Unauthenticated, "missing or invalid credential"),
		status.Error(codes.PermissionDenied, "terminal is retired"),
		status.Error(codes.FailedPrecondition, "no open batch"),
	} {
		t.Run(status.Code(later).String(), func(t *testing.T) {
			f := &fakePayments{authFail: []error{errHang, later}}
			_, err := f.authorizeWithShortTries(t)
			f.mu.Lock()
			defer f.mu.Unlock()
			var unknown *client.OutcomeUnknownError
			if !errors.As(err, &unknown) || unknown.Reversal == nil || len(f.reverses) != 1 {
				t.Fatalf("got %v after %d tries and %d reversals; want an OutcomeUnknownError after one TIMEOUT reversal", err, len(f.auths), len(f.reverses))
			}
			if status.Code(unknown.Err) != status.Code(later) {
				t.Errorf("OutcomeUnknownError.Err: got %v, want the last try's %v", unknown.Err, later)
			}
		})
	}
}

// The automatic reversal is idempotent and has ReversalTimeout to succeed:
// an Internal error (a failed store read, say) is retried, not final.
func TestAutomaticReversalRetriesInternalErrors(t *testing.T) {
	internal := status.Error(codes.Internal, "internal error")
	f := &fakePayments{authFail: []error{internal}, revFail: []error{internal, status.Error(codes.Unknown, "?"), nil}}
	c := startFake(t, f)
	_, err := c.AuthorizeWithPolicy(t.Context(), payReq(), fastRetry)
	f.mu.Lock()
	defer f.mu.Unlock()
	var unknown *client.OutcomeUnknownError
	if !errors.As(err, &unknown) || unknown.Reversal.GetStatus() != pb.ReverseStatus_REVERSE_STATUS_REVERSED || len(f.reverses) != 3 {
		t.Fatalf("got %v after %d reversal tries; want reversed on the third", err, len(f.reverses))
	}
}

// A request that cannot be encoded (invalid UTF-8 from a card reader, say)
// is never sent: its failure is final, with nothing to reverse.
func TestUnencodableRequestIsNotReversed(t *testing.T) {
	f := &fakePayments{}
	c := startFake(t, f)
	req := payReq()
	req.Card.Token = "tok_\xff"
	_, err := c.AuthorizeWithPolicy(t.Context(), req, fastRetry)
	f.mu.Lock()
	defer f.mu.Unlock()
	var unknown *client.OutcomeUnknownError
	if errors.As(err, &unknown) || status.Code(err) != codes.InvalidArgument || len(f.auths)+len(f.reverses) != 0 {
		t.Fatalf("got %v with %d calls and %d reversals on the server; want InvalidArgument and nothing sent", err, len(f.auths), len(f.reverses))
	}
	cctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.AuthorizeWithPolicy(cctx, payReq(), fastRetry); status.Code(err) != codes.Canceled || len(f.auths)+len(f.reverses) != 0 {
		t.Fatalf("with an ended context: got %v and %d calls; want Canceled and nothing sent", err, len(f.auths)+len(f.reverses))
	}
}

// When the reversal finds the authorization decided and beyond reversal
// (its batch closed meanwhile), the decision stands: the client fetches it
// by replaying the request and returns it instead of "outcome unknown".
func TestNotReversibleReturnsTheStoredDecision(t *testing.T) {
	f := &fakePayments{authFail: []error{errHang, errHang, errHang}, revStatus: pb.ReverseStatus_REVERSE_STATUS_NOT_REVERSIBLE}
	resp, err := f.authorizeWithShortTries(t)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil || resp.GetDecision() != pb.Decision_DECISION_APPROVED || len(f.auths) != 4 || len(f.reverses) != 1 {
		t.Fatalf("got %v, %v after %d tries and %d reversals; want the approval from a fourth try after one reversal", resp, err, len(f.auths), len(f.reverses))
	}
}

// A caller rate limited for failed authentications was refused before
// anything was decided: the refusal is final at once, with no retries and
// no reversal (which would be refused too, after ReversalTimeout).
func TestRateLimitedCallerIsRefusedAtOnce(t *testing.T) {
	addr := serve(t, server.DefaultConfig(t.TempDir()))
	c, err := client.Dial(addr, client.WithInsecure(), client.WithBearer("pft_revoked-or-mistyped-credential"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 40 { // spend the peer's failure budget
		c.Payment().Authorize(t.Context(), payReq())
	}
	p := fastRetry
	p.ReversalTimeout = time.Minute
	_, err = c.AuthorizeWithPolicy(t.Context(), payReq(), p)
	var unknown *client.OutcomeUnknownError
	if errors.As(err, &unknown) || status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("got %v; want the ResourceExhausted refusal, no reversal", err)
	}
	if client.Transient(err) {
		t.Errorf("Transient(%v) = true; retrying only spends more of the failure budget", err)
	}
}

// End to end: the first try is approved but its answer is lost, and the
// terminal's credential is rotated before the retry, which is refused. The
// client must not report the refusal as the outcome while the approval
// stands: it reverses, and here the reversal is refused too, so it says
// the outcome is open.
func TestLostApprovalThenRotatedCredentialIsNotReportedAsRefused(t *testing.T) {
	addr, admin, enrollment := fleetServer(t, "SN-R")
	ctx := t.Context()
	reg, err := admin.Register(ctx, "SN-R", enrollment, &pb.DeviceInfo{Model: "A920"})
	if err != nil {
		t.Fatal(err)
	}
	var term *client.Client
	var mu sync.Mutex
	first := true
	loseFirstAnswer := func(ictx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ictx, method, req, reply, cc, opts...)
		if method != "/posfleet.v1.PaymentService/Authorize" || err != nil {
			return err
		}
		mu.Lock()
		lose := first
		first = false
		mu.Unlock()
		if lose {
			cred, rerr := term.RotateCredential(context.WithoutCancel(ictx))
			if rerr != nil {
				t.Errorf("RotateCredential: %v", rerr)
			}
			// The new credential's first use revokes the one term holds.
			fresh, rerr := client.Dial(addr, client.WithInsecure(), client.WithBearer(cred))
			if rerr != nil {
				t.Fatal(rerr)
			}
			defer fresh.Close()
			if _, rerr := fresh.Heartbeat(context.WithoutCancel(ictx), &pb.TerminalStatus{}); rerr != nil {
				t.Errorf("Heartbeat with the new credential: %v", rerr)
			}
			return status.Error(codes.Unavailable, "connection reset")
		}
		return nil
	}
	term, err = client.Dial(addr, client.WithInsecure(), client.WithBearer(reg.GetCredential()),
		client.WithDialOptions(grpc.WithChainUnaryInterceptor(loseFirstAnswer)))
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()

	_, err = term.AuthorizeWithPolicy(ctx, payReq(), fastRetry)
	list, lerr := admin.Admin().ListTransactions(ctx, &pb.ListTransactionsRequest{MerchantId: "M1"})
	if lerr != nil || len(list.GetTransactions()) != 1 {
		t.Fatalf("ListTransactions: %v, %v; want the one approval", list, lerr)
	}
	tx := list.GetTransactions()[0]
	var unknown *client.OutcomeUnknownError
	switch {
	case tx.GetDecision() != pb.Decision_DECISION_APPROVED:
		t.Fatalf("transaction %v; want the approval whose answer was lost", tx)
	case !tx.GetReversed() && (!errors.As(err, &unknown) || unknown.ReversalErr == nil):
		t.Fatalf("got %v while approval %s stands unreversed; want an OutcomeUnknownError saying the reversal failed", err, tx.GetTransactionId())
	case tx.GetReversed() && (!errors.As(err, &unknown) || unknown.Reversal == nil):
		t.Fatalf("got %v after %s was reversed; want an OutcomeUnknownError with the reversal", err, tx.GetTransactionId())
	}
}

// TestReverseWithPolicyTriesAsManyTimesAsThePolicySays: a reversal whose
// node is down for longer than the default policy's four tries goes through
// under a policy of more tries, every try with the same request_id, and a
// policy of fewer tries gives up after them.
func TestReverseWithPolicyTriesAsManyTimesAsThePolicySays(t *testing.T) {
	down := status.Error(codes.Unavailable, "down")
	f := &fakePayments{revFail: []error{down, down, down, down, down, nil}}
	c := startFake(t, f)
	p := fastRetry
	p.Attempts = 6
	resp, err := c.ReverseWithPolicy(t.Context(), &pb.ReverseRequest{OriginalRequestId: "orig-1", Reason: pb.ReversalReason_REVERSAL_REASON_TIMEOUT}, p)
	if err != nil || resp.GetStatus() != pb.ReverseStatus_REVERSE_STATUS_REVERSED {
		t.Fatalf("got %v, %v; want REVERSED on the sixth try", resp, err)
	}
	f.mu.Lock()
	if len(f.reverses) != 6 {
		t.Errorf("got %d tries, want 6", len(f.reverses))
	}
	for _, r := range f.reverses[1:] {
		if r.GetRequestId() != f.reverses[0].GetRequestId() || r.GetRequestId() == "" {
			t.Errorf("tries with request IDs %q and %q, want one nonempty ID", f.reverses[0].GetRequestId(), r.GetRequestId())
		}
	}
	f.reverses, f.revFail = nil, []error{down, down, down}
	f.mu.Unlock()

	p.Attempts = 2
	if _, err := c.ReverseWithPolicy(t.Context(), &pb.ReverseRequest{OriginalRequestId: "orig-2"}, p); status.Code(err) != codes.Unavailable {
		t.Errorf("got %v, want Unavailable after two tries", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reverses) != 2 {
		t.Errorf("got %d tries, want 2", len(f.reverses))
	}
}
