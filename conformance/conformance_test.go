package conformance_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/posfleet/posfleet/client"
	"github.com/posfleet/posfleet/conformance"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// retryDelay returns the RetryInfo delay of a rate-limited call.
func retryDelay(err error) (time.Duration, bool) {
	if status.Code(err) != codes.ResourceExhausted {
		return 0, false
	}
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

func sale(merchant, currency string, minor int64) *pb.AuthorizeRequest {
	return &pb.AuthorizeRequest{
		RequestId:  client.NewRequestID(),
		MerchantId: merchant,
		Amount:     &pb.Money{MinorUnits: minor, Currency: currency},
		Card:       &pb.Card{Token: "tok_conformance_0001", EntryMode: pb.EntryMode_ENTRY_MODE_CHIP},
		Capture:    true,
	}
}

// repeat calls f until it succeeds, fails for good or five tries are
// spent, waiting at least a failure's RetryInfo delay between tries:
// Register and RotateCredential, which the SDK does not retry, are safe
// to repeat when their answer was lost.
func repeat[T any](f func() (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		v, err := f()
		if err == nil || !client.Transient(err) || attempt == 5 {
			return v, err
		}
		time.Sleep(max(client.RetryDelay(err), 50*time.Millisecond))
	}
}

// register registers the terminal, repeating Register with the same
// serial number and code while its answer does not arrive: the code stays
// usable until the credential it issued is first used.
func register(ctx context.Context, tg conformance.Target, model string) (*pb.RegisterResponse, error) {
	pre, err := dialAs(tg, "")
	if err != nil {
		return nil, err
	}
	defer pre.Close()
	return repeat(func() (*pb.RegisterResponse, error) {
		return pre.Register(ctx, tg.SerialNumber, tg.EnrollmentCode, &pb.DeviceInfo{Model: model})
	})
}

// dialAs dials the kit with a terminal credential ("" for none).
func dialAs(tg conformance.Target, cred string, opts ...grpc.DialOption) (*client.Client, error) {
	return client.Dial(tg.Addr, client.WithInsecure(), client.WithBearer(cred), client.WithDefaultTimeout(10*time.Second), client.WithDialOptions(opts...))
}

// books are a terminal's own totals, per batch.
type books map[uint64]*pb.BatchTotals

func (b books) batch(n uint64, currency string) *pb.BatchTotals {
	if b[n] == nil {
		zero := func() *pb.Money { return &pb.Money{Currency: currency} }
		b[n] = &pb.BatchTotals{SaleAmount: zero(), RefundAmount: zero(), ReversalAmount: zero()}
	}
	return b[n]
}

// sdkTerminal is a terminal built on the Go SDK: identity pinned, the
// SDK's retries and automatic reversal, its config watch, which carries
// out the server's ROTATE_CREDENTIAL command, books kept per batch and
// reconciled with GetOpenBatch when the server closed a batch under it.
func sdkTerminal(ctx context.Context, tg conformance.Target) error {
	reg, err := register(ctx, tg, "GO-SDK")
	if err != nil {
		return err
	}
	if err := client.VerifyIdentity(reg.GetIdentity(), tg.PinnedKey); err != nil {
		return err
	}
	// The watch ends once a config's APPLIED acknowledgement went
	// through, which the SDK sends after Apply returns.
	wctx, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	acks := grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if ack, ok := req.(*pb.AckConfigRequest); ok && err == nil && ack.GetResult() == pb.ConfigApplyResult_CONFIG_APPLY_RESULT_APPLIED {
			stop()
		}
		return err
	})
	dial := func(cred string) (*client.Client, error) {
		return dialAs(tg, cred, acks)
	}
	c, err := dial(reg.GetCredential())
	if err != nil {
		return err
	}
	defer func() { c.Close() }()

	var mu sync.Mutex // guards acked
	acked := map[string]bool{}
	ack := func(ctx context.Context, c *client.Client, cmds []*pb.RemoteCommand) error {
		mu.Lock()
		defer mu.Unlock()
		for _, cmd := range cmds {
			// The watch carries out and acknowledges rotations.
			if acked[cmd.GetCommandId()] || cmd.GetType() == pb.CommandType_COMMAND_TYPE_ROTATE_CREDENTIAL {
				continue
			}
			if err := c.AckCommand(ctx, cmd.GetCommandId(), true, "done"); err != nil {
				return err
			}
			acked[cmd.GetCommandId()] = true
		}
		return nil
	}
	var version atomic.Uint64
	version.Store(reg.GetConfig().GetVersion())
	heartbeat := func(c *client.Client) (*pb.HeartbeatResponse, error) {
		for {
			hb, err := c.Heartbeat(ctx, &pb.TerminalStatus{ConfigVersion: version.Load()})
			if d, ok := retryDelay(err); ok {
				time.Sleep(d)
				continue
			}
			return hb, err
		}
	}
	if _, err := heartbeat(c); err != nil {
		return err
	}

	// Watch until a config is applied; commands on the stream are acked
	// through the same de-duplicating ack, except a rotation, which the
	// watch carries out: the client switches to the new credential.
	var ackErr error
	var stored atomic.Pointer[string] // the terminal's durable store
	_, werr := c.WatchConfig(wctx, client.ConfigWatch{
		KnownVersion: version.Load(),
		MinBackoff:   50 * time.Millisecond,
		Apply: func(_ context.Context, cfg *pb.WatchConfigResponse) error {
			version.Store(cfg.GetVersion())
			return nil
		},
		Commands: func(ctx context.Context, cmds []*pb.RemoteCommand) { ackErr = errors.Join(ackErr, ack(ctx, c, cmds)) },
		SaveCredential: func(_ context.Context, cred string) error {
			stored.Store(&cred)
			return nil
		},
	})
	stop()
	if ackErr != nil {
		return ackErr
	}
	if !errors.Is(werr, context.Canceled) {
		return fmt.Errorf("config watch: %w", werr)
	}
	hb, err := heartbeat(c)
	if err != nil {
		return err
	}
	if err := ack(ctx, c, hb.GetCommands()); err != nil {
		return err
	}

	policy := client.DefaultRetryPolicy()
	policy.MinBackoff, policy.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	bk := books{}
	sell := func(minor int64) (*pb.AuthorizeResponse, error) {
		resp, err := c.AuthorizeWithPolicy(ctx, sale(tg.MerchantID, tg.Currency, minor), policy)
		if err == nil && resp.GetDecision() == pb.Decision_DECISION_APPROVED {
			t := bk.batch(resp.GetBatchNumber(), tg.Currency)
			t.SaleCount++
			t.SaleAmount.MinorUnits += minor
		}
		return resp, err
	}
	first, err := sell(1250)
	if err != nil {
		return err
	}
	_, err = sell(780)
	var unknown *client.OutcomeUnknownError
	if !errors.As(err, &unknown) {
		return errors.New("an authorization that was never answered did not end as an unknown outcome")
	}
	if unknown.Reversal.GetStatus() == pb.ReverseStatus_REVERSE_STATUS_REVERSED {
		t := bk.batch(first.GetBatchNumber(), tg.Currency)
		t.ReversalCount++
		t.ReversalAmount.MinorUnits += 780
	}
	if _, err := sell(430); err != nil {
		return err
	}
	refund, err := c.Refund(ctx, &pb.RefundRequest{AuthorizationId: first.GetAuthorizationId(), Amount: &pb.Money{MinorUnits: 500, Currency: tg.Currency}})
	if err != nil {
		return err
	}
	if refund.GetDecision() == pb.Decision_DECISION_APPROVED {
		t := bk.batch(refund.GetBatchNumber(), tg.Currency)
		t.RefundCount++
		t.RefundAmount.MinorUnits += 500
	}
	n := first.GetBatchNumber()
	_, err = c.CloseBatch(ctx, &pb.CloseBatchRequest{BatchNumber: n, TerminalTotals: bk.batch(n, tg.Currency)})
	if client.Reason(err) == pb.ErrorReason_BATCH_MISMATCH {
		// The server closed the batch itself: close the open one, with
		// the books of that batch, under a new request_id.
		open, oerr := c.OpenBatch(ctx)
		if oerr != nil {
			return oerr
		}
		n = open.GetBatchNumber()
		_, err = c.CloseBatch(ctx, &pb.CloseBatchRequest{BatchNumber: n, TerminalTotals: bk.batch(n, tg.Currency)})
	}
	return err
}

// naiveTerminal makes the mistakes the kit exists to catch: a failed
// authorization is sent again as a new one, never reversed, and a rate
// limit is retried at once.
func naiveTerminal(ctx context.Context, tg conformance.Target) error {
	pre, err := dialAs(tg, "")
	if err != nil {
		return err
	}
	reg, err := pre.Register(ctx, tg.SerialNumber, tg.EnrollmentCode, nil)
	pre.Close()
	if err != nil {
		return err
	}
	c, err := dialAs(tg, reg.GetCredential())
	if err != nil {
		return err
	}
	defer c.Close()
	for range 2 {
		c.Heartbeat(ctx, &pb.TerminalStatus{})
	}
	for _, minor := range []int64{1250, 780} {
		for range 3 {
			if _, err := c.Payment().Authorize(ctx, sale(tg.MerchantID, tg.Currency, minor)); err == nil {
				break
			}
		}
	}
	return nil
}

func results(rep *conformance.Report) map[string]conformance.Result {
	m := map[string]conformance.Result{}
	for _, r := range rep.Results {
		m[r.Scenario] = r
	}
	return m
}

// runKit runs the kit against terminal, playing every scenario but the
// ones in skip, and returns its report and text.
func runKit(t *testing.T, terminal func(context.Context, conformance.Target) error, skip ...string) (*conformance.Report, string) {
	t.Helper()
	opts := conformance.DefaultOptions()
	opts.Listen = "127.0.0.1:0"
	opts.Terminal = terminal
	opts.Scenarios = slices.DeleteFunc(opts.Scenarios, func(id string) bool { return slices.Contains(skip, id) })
	rep, err := conformance.Run(t.Context(), opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return rep, b.String()
}

func TestGoSDKPasses(t *testing.T) {
	rep, text := runKit(t, sdkTerminal)
	if !rep.Passed() {
		t.Fatalf("Go SDK terminal failed conformance:\n%s", text)
	}
	if !strings.Contains(text, "RESULT: PASS") {
		t.Errorf("report of a pass lacks RESULT: PASS:\n%s", text)
	}
	if got := results(rep)[conformance.ScenarioGoaway]; !strings.Contains(got.Detail, "on a new connection") {
		t.Errorf("goaway: %q, want the retry on a new connection (the recycled one was closed)", got.Detail)
	}
	if n := len(rep.Results); n != len(conformance.ScenarioIDs()) {
		t.Errorf("got %d results, want one per scenario (%d)", n, len(conformance.ScenarioIDs()))
	}
	t.Logf("\n%s", text)
}

func TestNaiveTerminalFails(t *testing.T) {
	rep, text := runKit(t, naiveTerminal, conformance.IDLostRegister)
	if rep.Passed() || !strings.Contains(text, "RESULT: FAIL") {
		t.Fatalf("naive terminal passed:\n%s", text)
	}
	got := results(rep)
	for _, tc := range []struct {
		scenario, detail string
	}{
		{conformance.ScenarioLostAnswer, "without retrying"},
		{conformance.ScenarioUnanswered, "charged the same sale again under new request_id"},
		{conformance.ScenarioRateLimit, "RetryInfo said"},
		{conformance.ScenarioStreamReset, "never watched"},
		{conformance.ScenarioBatch, "never closed"},
		{conformance.ScenarioRotation, "never rotated its credential"},
		// Queued or not before the terminal exits, never acknowledged.
		{conformance.ScenarioCommand, ""},
	} {
		r := got[tc.scenario]
		if r.Pass || !strings.Contains(r.Detail, tc.detail) {
			t.Errorf("%s: got pass=%v %q, want a fail saying %q", tc.scenario, r.Pass, r.Detail, tc.detail)
		}
	}
}

// sloppyTerminal registers and pays with the SDK but makes the mistakes
// the newer scenarios exist to catch: it applies whatever config comes,
// gives up a rotation whose answer was lost, sends a sale again under a
// new request_id when its connection is recycled, refunds again after a
// decline and repeats a close the server refused.
func sloppyTerminal(ctx context.Context, tg conformance.Target) error {
	reg, err := register(ctx, tg, "SLOPPY")
	if err != nil {
		return err
	}
	c, err := dialAs(tg, reg.GetCredential())
	if err != nil {
		return err
	}
	defer c.Close()
	c.Heartbeat(ctx, &pb.TerminalStatus{ConfigVersion: reg.GetConfig().GetVersion()})

	// Watch until a config comes (the first stream is reset), apply it
	// whatever it holds, rotate once while the stream is open.
	wctx, stop := context.WithTimeout(ctx, 20*time.Second)
	defer stop()
watch:
	for range 3 {
		stream, err := c.Terminal().WatchConfig(wctx, &pb.WatchConfigRequest{KnownVersion: reg.GetConfig().GetVersion()})
		if err != nil {
			return err
		}
		for {
			msg, err := stream.Recv()
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue watch
			}
			if msg.GetVersion() == 0 {
				continue
			}
			if _, err := c.Terminal().AckConfig(ctx, &pb.AckConfigRequest{Version: msg.GetVersion(), Result: pb.ConfigApplyResult_CONFIG_APPLY_RESULT_APPLIED}); err != nil {
				return err
			}
			c.Heartbeat(ctx, &pb.TerminalStatus{ConfigVersion: msg.GetVersion()})
			c.RotateCredential(ctx) // its answer is lost; never asked again
			break watch
		}
	}
	stop()

	policy := client.DefaultRetryPolicy()
	policy.MinBackoff, policy.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	first, err := c.AuthorizeWithPolicy(ctx, sale(tg.MerchantID, tg.Currency, 1250), policy)
	if err != nil {
		return err
	}
	c.AuthorizeWithPolicy(ctx, sale(tg.MerchantID, tg.Currency, 780), policy)
	for range 3 {
		if _, err := c.Payment().Authorize(ctx, sale(tg.MerchantID, tg.Currency, 430)); err == nil {
			break
		}
	}
	for range 2 {
		refund, err := c.Payment().Refund(ctx, &pb.RefundRequest{RequestId: client.NewRequestID(), AuthorizationId: first.GetAuthorizationId(), Amount: &pb.Money{MinorUnits: 500, Currency: tg.Currency}})
		if err == nil && refund.GetDecision() == pb.Decision_DECISION_APPROVED {
			break
		}
	}
	closeReq := &pb.CloseBatchRequest{RequestId: client.NewRequestID(), BatchNumber: first.GetBatchNumber(), TerminalTotals: &pb.BatchTotals{SaleCount: 3}}
	for range 2 {
		if _, err := c.Payment().CloseBatch(ctx, closeReq); err == nil {
			break
		}
	}
	return nil
}

// quitterTerminal gives up when Register goes unanswered.
func quitterTerminal(ctx context.Context, tg conformance.Target) error {
	pre, err := dialAs(tg, "")
	if err != nil {
		return err
	}
	defer pre.Close()
	pre.Register(ctx, tg.SerialNumber, tg.EnrollmentCode, nil)
	return nil
}

func TestBrokenTerminalsFail(t *testing.T) {
	for _, tc := range []struct {
		name     string
		terminal func(context.Context, conformance.Target) error
		skip     []string
		want     map[string]string // scenario ID: what its failure says
	}{
		{"sloppy", sloppyTerminal, []string{conformance.IDLostRegister}, map[string]string{
			conformance.IDGoaway:        "charged the same sale again under new request_id",
			conformance.IDRejected:      "APPLIED with a heartbeat_interval of 1s",
			conformance.IDRotation:      "never repeated RotateCredential after its answer was lost",
			conformance.IDTombstone:     "refunded the sale again under new request_id",
			conformance.IDBatchMismatch: "repeated the refused close",
			conformance.IDBatch:         "out of balance: terminal sales 3/0",
		}},
		{"quitter", quitterTerminal, nil, map[string]string{
			conformance.IDLostRegister: "never repeated Register after its answer was lost",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, text := runKit(t, tc.terminal, tc.skip...)
			if rep.Passed() || !strings.Contains(text, "RESULT: FAIL") {
				t.Fatalf("%s terminal passed:\n%s", tc.name, text)
			}
			got := map[string]conformance.Result{}
			for _, r := range rep.Results {
				got[r.ID] = r
			}
			for id, detail := range tc.want {
				if r := got[id]; r.Pass || !strings.Contains(r.Detail, detail) {
					t.Errorf("%s: got pass=%v %q, want a fail saying %q", id, r.Pass, r.Detail, detail)
				}
			}
			t.Logf("\n%s", text)
		})
	}
}
