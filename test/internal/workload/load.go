package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// Kind names a kind of acknowledged state.
type Kind string

// The kinds of state the workload creates and checks.
const (
	Approval   Kind = "approval"
	Decline    Kind = "decline"
	Reversal   Kind = "reversal"
	Refund     Kind = "refund"
	BatchClose Kind = "batch close"
	Merchant   Kind = "merchant"
	Store      Kind = "store"
	Provision  Kind = "provision"
	Register   Kind = "register"
	Suspend    Kind = "suspend"
	Config     Kind = "config publish"
	Audit      Kind = "audit event"
)

// Kinds lists every kind, in report order.
var Kinds = []Kind{Approval, Decline, Reversal, Refund, BatchClose, Merchant, Store, Provision, Register, Suspend, Config, Audit}

// AuditDurable says whether an acknowledged change's audit event must
// survive a crash or power cut. It does: an event is committed with its
// change (or, for config publishes, synced before the answer), so a missing
// one is a failure.
const AuditDurable = true

const currency = "NZD"

// Term is a registered terminal that pays.
type Term struct {
	ID, Cred string
}

// ack is an acknowledged answer and how to check that it survived.
type ack struct {
	kind Kind
	what string
	// check returns an error when the state the answer promised is gone
	// or different.
	check func(ctx context.Context, v *verifier) error
}

// auditWant is an audit event an acknowledged change must have left.
type auditWant struct {
	typ                  pb.AuditEventType
	merchant, terminalID string
}

// History is what a server acknowledged across restarts. Its methods are
// safe for concurrent use.
type History struct {
	mu sync.Mutex // guards everything below
	// Terms are the paying terminals, set up by Setup.
	Terms []Term
	acks  []ack
	audit []auditWant
	// doubt are authorizations sent without an answer.
	doubt []doubtful
	seq   int
}

type doubtful struct {
	terminal int
	req      *pb.AuthorizeRequest
}

func (h *History) add(a ack, audits ...auditWant) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.acks = append(h.acks, a)
	h.audit = append(h.audit, audits...)
}

func (h *History) next() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	return h.seq
}

// Len is how many answers have been acknowledged so far.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.acks)
}

// Mark is a point in a History, for checking only what was acknowledged
// after it. The zero Mark is the start.
type Mark struct{ acks, audit int }

// Mark returns the current point of the history.
func (h *History) Mark() Mark {
	h.mu.Lock()
	defer h.mu.Unlock()
	return Mark{acks: len(h.acks), audit: len(h.audit)}
}

// Counts returns how many answers of each kind were acknowledged.
func (h *History) Counts() map[Kind]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := map[Kind]int{Audit: len(h.audit)}
	for _, a := range h.acks {
		n[a.kind]++
	}
	return n
}

// Setup creates the paying merchant M1 with store S1 and n registered
// terminals.
func (h *History) Setup(ctx context.Context, t testing.TB, addr string, n int) {
	t.Helper()
	admin := Dial(t, addr, AdminToken)
	if err := h.fleetSteps(ctx, admin, "M1", false); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		serial := fmt.Sprint("SN-PAY-", i)
		id, cred, err := h.terminalSteps(ctx, admin, serial, "M1", "S1", false)
		if err != nil {
			t.Fatal(err)
		}
		h.mu.Lock()
		h.Terms = append(h.Terms, Term{ID: id, Cred: cred})
		h.mu.Unlock()
	}
}

// Load drives the server at addr with every kind of change until ctx ends
// or the server stops answering, recording each acknowledged answer. A
// call that fails for another reason than the server going away (or ctx
// ending) is reported through t. seed makes the mix reproducible.
func (h *History) Load(ctx context.Context, t testing.TB, addr string, seed uint64) {
	var wg sync.WaitGroup
	h.mu.Lock()
	terms := h.Terms
	h.mu.Unlock()
	report := func(err error) {
		if err != nil && !gone(ctx, err) {
			t.Errorf("workload: %v", err)
		}
	}
	for i, tm := range terms {
		c := Dial(t, addr, tm.Cred)
		wg.Go(func() { report(h.pay(ctx, c, i, rand.New(rand.NewPCG(seed, uint64(i))))) })
	}
	admin := Dial(t, addr, AdminToken)
	wg.Go(func() {
		for ctx.Err() == nil {
			if err := h.fleetSteps(ctx, admin, fmt.Sprintf("W%d", h.next()), true); err != nil {
				report(err)
				return
			}
		}
	})
	wg.Wait()
}

// gone reports whether err means the server went away or ctx ended.
func gone(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded:
		return true
	}
	return false
}

// fleetSteps creates a merchant with a store, publishes a config for it
// and, with terminal set, provisions, registers and suspends a terminal of
// it, recording each acknowledged step.
func (h *History) fleetSteps(ctx context.Context, admin *client.Client, merchant string, terminal bool) error {
	if _, err := admin.CreateMerchant(ctx, &pb.Merchant{MerchantId: merchant, LegalName: merchant + " Ltd", Mcc: "5411", Currency: currency}); err != nil {
		return fmt.Errorf("create merchant %s: %w", merchant, err)
	}
	h.add(ack{kind: Merchant, what: merchant, check: func(ctx context.Context, v *verifier) error {
		m, err := v.admin.GetMerchant(ctx, merchant)
		if err != nil {
			return err
		}
		if m.GetLegalName() != merchant+" Ltd" {
			return fmt.Errorf("legal name %q", m.GetLegalName())
		}
		return nil
	}}, auditWant{typ: pb.AuditEventType_AUDIT_EVENT_TYPE_MERCHANT_CREATED, merchant: merchant})

	if _, err := admin.CreateStore(ctx, &pb.Store{MerchantId: merchant, StoreId: "S1", Name: "S1"}); err != nil {
		return fmt.Errorf("create store %s/S1: %w", merchant, err)
	}
	h.add(ack{kind: Store, what: merchant + "/S1", check: func(ctx context.Context, v *verifier) error {
		stores, err := v.admin.AllStores(ctx, merchant)
		if err != nil {
			return err
		}
		for _, s := range stores {
			if s.GetStoreId() == "S1" {
				return nil
			}
		}
		return errors.New("not listed")
	}}, auditWant{typ: pb.AuditEventType_AUDIT_EVENT_TYPE_STORE_CREATED, merchant: merchant})

	pub := &pb.PublishConfigRequest{
		Scope:    &pb.ConfigScope{MerchantId: merchant},
		Settings: &pb.Settings{Extra: map[string]string{"workload": merchant}},
	}
	res, err := admin.Admin().PublishConfig(ctx, pub)
	if err != nil {
		return fmt.Errorf("publish config for %s: %w", merchant, err)
	}
	h.add(ack{kind: Config, what: res.GetRolloutId(), check: func(ctx context.Context, v *verifier) error {
		got, err := v.admin.Admin().GetRollout(ctx, &pb.GetRolloutRequest{RolloutId: res.GetRolloutId()})
		if err != nil {
			return err
		}
		if got.GetRollout().GetVersion() != res.GetVersion() || got.GetRollout().GetScope().GetMerchantId() != merchant {
			return fmt.Errorf("rollout has version %d for %q, want version %d for %q",
				got.GetRollout().GetVersion(), got.GetRollout().GetScope().GetMerchantId(), res.GetVersion(), merchant)
		}
		return nil
	}}, auditWant{typ: pb.AuditEventType_AUDIT_EVENT_TYPE_CONFIG_PUBLISHED})

	if !terminal {
		return nil
	}
	id, _, err := h.terminalSteps(ctx, admin, "SN-"+merchant, merchant, "S1", true)
	if err != nil {
		return err
	}
	if _, err := admin.SuspendTerminal(ctx, id, "workload"); err != nil {
		return fmt.Errorf("suspend %s: %w", id, err)
	}
	h.add(ack{kind: Suspend, what: id, check: terminalState(id, pb.TerminalState_TERMINAL_STATE_SUSPENDED)},
		auditWant{typ: pb.AuditEventType_AUDIT_EVENT_TYPE_TERMINAL_SUSPENDED, terminalID: id})
	return nil
}

// terminalSteps provisions and registers a terminal.
func (h *History) terminalSteps(ctx context.Context, admin *client.Client, serial, merchant, store string, suspendable bool) (id, cred string, err error) {
	prov, err := admin.ProvisionTerminal(ctx, serial, merchant, store, "", time.Hour)
	if err != nil {
		return "", "", fmt.Errorf("provision %s: %w", serial, err)
	}
	id = prov.GetTerminalId()
	h.add(ack{kind: Provision, what: id, check: terminalState(id, pb.TerminalState_TERMINAL_STATE_PROVISIONED)},
		auditWant{typ: pb.AuditEventType_AUDIT_EVENT_TYPE_TERMINAL_PROVISIONED, terminalID: id})
	reg, err := admin.Register(ctx, serial, prov.GetEnrollmentCode(), &pb.DeviceInfo{Model: "workload"})
	if err != nil {
		return "", "", fmt.Errorf("register %s: %w", serial, err)
	}
	h.add(ack{kind: Register, what: id, check: terminalState(id, pb.TerminalState_TERMINAL_STATE_ACTIVE)},
		auditWant{typ: pb.AuditEventType_AUDIT_EVENT_TYPE_TERMINAL_REGISTERED, terminalID: id})
	return id, reg.GetCredential(), nil
}

// terminalState checks that a terminal is at least in state want: a later
// step may have been committed without its answer arriving.
func terminalState(id string, want pb.TerminalState) func(context.Context, *verifier) error {
	return func(ctx context.Context, v *verifier) error {
		tm, err := v.admin.GetTerminal(ctx, id)
		if err != nil {
			return err
		}
		if tm.GetState() < want {
			return fmt.Errorf("state %v, want at least %v", tm.GetState(), want)
		}
		return nil
	}
}

// approved is an approval the payment worker may still reverse or refund.
type approved struct {
	requestID, authorizationID string
}

// pay runs terminal i's payments: approvals, declines, reversals, refunds
// and batch closes, in a mix drawn from rng.
func (h *History) pay(ctx context.Context, c *client.Client, i int, rng *rand.Rand) error {
	var open []approved
	var batch uint64
	for ctx.Err() == nil {
		id := fmt.Sprintf("wl-%d-%d", i, h.next())
		switch r := rng.IntN(100); {
		case r < 12:
			req := authorizeRequest(id, "tok_test_decline_"+id, 100+rng.Int64N(900))
			resp, err := h.authorize(ctx, c, i, req)
			if err != nil {
				return err
			}
			if resp.GetDecision() != pb.Decision_DECISION_DECLINED {
				return fmt.Errorf("authorize %s with a declining card: %v", id, resp)
			}
			batch = resp.GetBatchNumber()
		case r < 22 && len(open) > 0:
			orig := open[len(open)-1]
			open = open[:len(open)-1]
			req := &pb.ReverseRequest{RequestId: id, OriginalRequestId: orig.requestID, Reason: pb.ReversalReason_REVERSAL_REASON_CUSTOMER_CANCEL}
			resp, err := c.Payment().Reverse(ctx, req)
			if err != nil {
				return fmt.Errorf("reverse %s: %w", orig.requestID, err)
			}
			if resp.GetStatus() != pb.ReverseStatus_REVERSE_STATUS_REVERSED {
				return fmt.Errorf("reverse %s: %v", orig.requestID, resp)
			}
			h.add(ack{kind: Reversal, what: id, check: func(ctx context.Context, v *verifier) error {
				again, err := v.terms[i].Payment().Reverse(ctx, req)
				if err != nil {
					return err
				}
				if !again.GetReplayed() || again.GetStatus() != resp.GetStatus() || again.GetAuthorizationId() != resp.GetAuthorizationId() {
					return fmt.Errorf("replay answered %v, acknowledged %v", again, resp)
				}
				return nil
			}})
		case r < 32 && len(open) > 0:
			orig := open[0]
			open = open[1:]
			req := &pb.RefundRequest{RequestId: id, AuthorizationId: orig.authorizationID, Amount: &pb.Money{MinorUnits: 50, Currency: currency}}
			resp, err := c.Payment().Refund(ctx, req)
			if err != nil {
				return fmt.Errorf("refund %s: %w", orig.authorizationID, err)
			}
			if resp.GetDecision() != pb.Decision_DECISION_APPROVED {
				return fmt.Errorf("refund %s: %v", orig.authorizationID, resp)
			}
			batch = resp.GetBatchNumber()
			h.add(ack{kind: Refund, what: id, check: func(ctx context.Context, v *verifier) error {
				again, err := v.terms[i].Payment().Refund(ctx, req)
				if err != nil {
					return err
				}
				if !again.GetReplayed() || again.GetRefundId() != resp.GetRefundId() || again.GetDecision() != resp.GetDecision() {
					return fmt.Errorf("replay answered %v, acknowledged %v", again, resp)
				}
				return nil
			}})
		case r < 36 && batch > 0:
			req := &pb.CloseBatchRequest{RequestId: id, BatchNumber: batch, TerminalTotals: &pb.BatchTotals{}}
			resp, err := c.Payment().CloseBatch(ctx, req)
			if err != nil {
				return fmt.Errorf("close batch %d: %w", batch, err)
			}
			batch = resp.GetNextBatchNumber()
			open = nil // a closed batch's approvals can no longer be reversed
			h.add(ack{kind: BatchClose, what: id, check: func(ctx context.Context, v *verifier) error {
				again, err := v.terms[i].Payment().CloseBatch(ctx, req)
				if err != nil {
					return err
				}
				if !again.GetReplayed() || again.GetBatchNumber() != resp.GetBatchNumber() || again.GetNextBatchNumber() != resp.GetNextBatchNumber() ||
					again.GetInBalance() != resp.GetInBalance() {
					return fmt.Errorf("replay answered %v, acknowledged %v", again, resp)
				}
				return nil
			}}, auditWant{typ: closeEventType(resp.GetInBalance()), terminalID: h.terminalID(i)})
		default:
			req := authorizeRequest(id, "tok_wl_"+id, 100+rng.Int64N(900))
			resp, err := h.authorize(ctx, c, i, req)
			if err != nil {
				return err
			}
			if resp.GetDecision() != pb.Decision_DECISION_APPROVED {
				return fmt.Errorf("authorize %s: %v", id, resp)
			}
			batch = resp.GetBatchNumber()
			open = append(open, approved{requestID: id, authorizationID: resp.GetAuthorizationId()})
		}
	}
	return nil
}

func (h *History) terminalID(i int) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.Terms[i].ID
}

func authorizeRequest(id, token string, amount int64) *pb.AuthorizeRequest {
	return &pb.AuthorizeRequest{
		RequestId:  id,
		MerchantId: "M1",
		Amount:     &pb.Money{MinorUnits: amount, Currency: currency},
		Card:       &pb.Card{Token: token, MaskedPan: "411111******1111", EntryMode: pb.EntryMode_ENTRY_MODE_CHIP},
		Capture:    true,
	}
}

// authorize sends req for terminal i and records the answer, or the
// request as in doubt when none came.
func (h *History) authorize(ctx context.Context, c *client.Client, i int, req *pb.AuthorizeRequest) (*pb.AuthorizeResponse, error) {
	resp, err := c.Payment().Authorize(ctx, req)
	if err != nil {
		h.mu.Lock()
		h.doubt = append(h.doubt, doubtful{terminal: i, req: req})
		h.mu.Unlock()
		return nil, fmt.Errorf("authorize %s: %w", req.GetRequestId(), err)
	}
	h.addAuthorization(i, req, resp)
	return resp, nil
}

// addAuthorization records an acknowledged authorization, which a replay
// must answer the same.
func (h *History) addAuthorization(i int, req *pb.AuthorizeRequest, resp *pb.AuthorizeResponse) {
	kind := Approval
	if resp.GetDecision() != pb.Decision_DECISION_APPROVED {
		kind = Decline
	}
	h.add(ack{kind: kind, what: req.GetRequestId(), check: func(ctx context.Context, v *verifier) error {
		again, err := v.terms[i].Payment().Authorize(ctx, req)
		if err != nil {
			return err
		}
		if !again.GetReplayed() || again.GetAuthorizationId() != resp.GetAuthorizationId() || again.GetDecision() != resp.GetDecision() ||
			again.GetResponseCode() != resp.GetResponseCode() || again.GetAuthCode() != resp.GetAuthCode() {
			return fmt.Errorf("replay answered %v, acknowledged %v", again, resp)
		}
		return nil
	}})
}

// LoadUntilKilled drives p with Load and kills it with SIGKILL at a moment
// drawn from rng between minDelay and maxDelay after the load started,
// while calls are in flight. It returns the delay it drew.
func (h *History) LoadUntilKilled(t testing.TB, p *Process, rng *rand.Rand, minDelay, maxDelay time.Duration) time.Duration {
	t.Helper()
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	seed := rng.Uint64()
	delay := minDelay + time.Duration(rng.Int64N(int64(maxDelay-minDelay)+1))
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Load(ctx, t, p.Addr, seed)
	}()
	select {
	case <-time.After(delay):
	case <-p.Exited():
		t.Fatalf("posfleet died on its own: %v", p.Err())
	}
	p.Kill()
	stop()
	<-done
	return delay
}

// closeEventType is the audit event a batch close records: closed, or out
// of balance when the terminal's totals differ from the server's.
func closeEventType(inBalance bool) pb.AuditEventType {
	if inBalance {
		return pb.AuditEventType_AUDIT_EVENT_TYPE_BATCH_CLOSED
	}
	return pb.AuditEventType_AUDIT_EVENT_TYPE_BATCH_OUT_OF_BALANCE
}
