package conformance_test

import (
	"context"
	"errors"
	"strings"
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

// sdkTerminal is a terminal built on the Go SDK: identity pinned, the
// SDK's retries and automatic reversal, its config watch.
func sdkTerminal(ctx context.Context, tg conformance.Target) error {
	pre, err := client.Dial(tg.Addr, client.WithInsecure(), client.WithDefaultTimeout(10*time.Second))
	if err != nil {
		return err
	}
	reg, err := pre.Register(ctx, tg.SerialNumber, tg.EnrollmentCode, &pb.DeviceInfo{Model: "GO-SDK"})
	pre.Close()
	if err != nil {
		return err
	}
	if err := client.VerifyIdentity(reg.GetIdentity(), tg.PinnedKey); err != nil {
		return err
	}
	// The watch ends once the config's acknowledgement went through,
	// which the SDK sends after Apply returns.
	wctx, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	ackedConfig := grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err == nil && method == pb.TerminalService_AckConfig_FullMethodName {
			stop()
		}
		return err
	})
	c, err := client.Dial(tg.Addr, client.WithInsecure(), client.WithBearer(reg.GetCredential()), client.WithDefaultTimeout(10*time.Second), client.WithDialOptions(ackedConfig))
	if err != nil {
		return err
	}
	defer c.Close()

	acked := map[string]bool{}
	ack := func(ctx context.Context, cmds []*pb.RemoteCommand) error {
		for _, cmd := range cmds {
			if acked[cmd.GetCommandId()] {
				continue
			}
			if err := c.AckCommand(ctx, cmd.GetCommandId(), true, "done"); err != nil {
				return err
			}
			acked[cmd.GetCommandId()] = true
		}
		return nil
	}
	version := reg.GetConfig().GetVersion()
	heartbeat := func() (*pb.HeartbeatResponse, error) {
		for {
			hb, err := c.Heartbeat(ctx, &pb.TerminalStatus{ConfigVersion: version})
			if d, ok := retryDelay(err); ok {
				time.Sleep(d)
				continue
			}
			return hb, err
		}
	}
	if _, err := heartbeat(); err != nil {
		return err
	}

	// Watch until a config arrives; commands on the stream are acked
	// through the same de-duplicating ack.
	var ackErr error
	_, err = c.WatchConfig(wctx, client.ConfigWatch{
		KnownVersion: version,
		MinBackoff:   50 * time.Millisecond,
		Apply: func(_ context.Context, cfg *pb.WatchConfigResponse) error {
			version = cfg.GetVersion()
			return nil
		},
		Commands: func(ctx context.Context, cmds []*pb.RemoteCommand) { ackErr = errors.Join(ackErr, ack(ctx, cmds)) },
	})
	stop()
	if ackErr != nil {
		return ackErr
	}
	if !errors.Is(err, context.Canceled) {
		return err
	}
	hb, err := heartbeat()
	if err != nil {
		return err
	}
	if err := ack(ctx, hb.GetCommands()); err != nil {
		return err
	}

	policy := client.DefaultRetryPolicy()
	policy.MinBackoff, policy.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	first, err := c.AuthorizeWithPolicy(ctx, sale(tg.MerchantID, tg.Currency, 1250), policy)
	if err != nil {
		return err
	}
	_, err = c.AuthorizeWithPolicy(ctx, sale(tg.MerchantID, tg.Currency, 780), policy)
	var unknown *client.OutcomeUnknownError
	if !errors.As(err, &unknown) {
		return errors.New("an authorization that was never answered did not end as an unknown outcome")
	}
	// The terminal's own books: what was approved, what was reversed.
	money := func(minor int64) *pb.Money { return &pb.Money{MinorUnits: minor, Currency: tg.Currency} }
	totals := &pb.BatchTotals{SaleCount: 1, SaleAmount: money(1250), RefundAmount: money(0), ReversalAmount: money(0)}
	if unknown.Reversal.GetStatus() == pb.ReverseStatus_REVERSE_STATUS_REVERSED {
		totals.ReversalCount, totals.ReversalAmount = 1, money(780)
	}
	_, err = c.CloseBatch(ctx, &pb.CloseBatchRequest{BatchNumber: first.GetBatchNumber(), TerminalTotals: totals})
	return err
}

// naiveTerminal makes the mistakes the kit exists to catch: a failed
// authorization is sent again as a new one, never reversed, and a rate
// limit is retried at once.
func naiveTerminal(ctx context.Context, tg conformance.Target) error {
	pre, err := client.Dial(tg.Addr, client.WithInsecure(), client.WithDefaultTimeout(10*time.Second))
	if err != nil {
		return err
	}
	reg, err := pre.Register(ctx, tg.SerialNumber, tg.EnrollmentCode, nil)
	pre.Close()
	if err != nil {
		return err
	}
	c, err := client.Dial(tg.Addr, client.WithInsecure(), client.WithBearer(reg.GetCredential()), client.WithDefaultTimeout(10*time.Second))
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

// runKit runs the kit against terminal and returns its report and text.
func runKit(t *testing.T, terminal func(context.Context, conformance.Target) error) (*conformance.Report, string) {
	t.Helper()
	opts := conformance.DefaultOptions()
	opts.Listen = "127.0.0.1:0"
	opts.Terminal = terminal
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
	t.Logf("\n%s", text)
}

func TestNaiveTerminalFails(t *testing.T) {
	rep, text := runKit(t, naiveTerminal)
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
		// Queued or not before the terminal exits, never acknowledged.
		{conformance.ScenarioCommand, ""},
	} {
		r := got[tc.scenario]
		if r.Pass || !strings.Contains(r.Detail, tc.detail) {
			t.Errorf("%s: got pass=%v %q, want a fail saying %q", tc.scenario, r.Pass, r.Detail, tc.detail)
		}
	}
}
