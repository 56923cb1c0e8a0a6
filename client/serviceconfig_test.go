package client_test

import (
	"context"
	"encoding/json"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
)

// TestServiceConfigNamesRealMethods checks that every service and method
// the published service config names exists: a typo would silently drop
// its retry policy.
func TestServiceConfigNamesRealMethods(t *testing.T) {
	var cfg struct {
		MethodConfig []struct {
			Name []struct{ Service, Method string }
		}
	}
	if err := json.Unmarshal([]byte(pb.ServiceConfigJSON), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.MethodConfig) == 0 {
		t.Fatal("service config has no methodConfig")
	}
	for _, mc := range cfg.MethodConfig {
		for _, n := range mc.Name {
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(n.Service))
			sd, ok := d.(protoreflect.ServiceDescriptor)
			if err != nil || !ok {
				t.Errorf("service %q: not a service (%v)", n.Service, err)
				continue
			}
			if n.Method != "" && sd.Methods().ByName(protoreflect.Name(n.Method)) == nil {
				t.Errorf("service %s has no method %q", n.Service, n.Method)
			}
		}
	}
}

// dialLoopback serves the services register adds on a loopback port and
// returns a client from Dial for it.
func dialLoopback(t *testing.T, register func(*grpc.Server)) *client.Client {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	register(gs)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	c, err := client.Dial(lis.Addr().String(), client.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// countingTerminal fails every call with the next error of its script and
// counts the calls per method.
type countingTerminal struct {
	pb.UnimplementedTerminalServiceServer

	mu     sync.Mutex // guards the fields below
	script []error
	calls  map[string]int
}

func (c *countingTerminal) next(method string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[method]++
	if len(c.script) == 0 {
		return nil
	}
	err := c.script[0]
	c.script = c.script[1:]
	return err
}

func (c *countingTerminal) Heartbeat(context.Context, *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	if err := c.next("Heartbeat"); err != nil {
		return nil, err
	}
	return &pb.HeartbeatResponse{ConfigVersion: 1}, nil
}

func (c *countingTerminal) Register(context.Context, *pb.RegisterRequest) (*pb.RegisterResponse, error) {
	if err := c.next("Register"); err != nil {
		return nil, err
	}
	return &pb.RegisterResponse{TerminalId: "T1"}, nil
}

// TestDialUsesServiceConfig checks that a client from Dial runs with the
// published service config: an Unavailable Heartbeat is retried by the
// connection, even through the raw stub, while Register, which the config
// leaves without a retry policy, is not.
func TestDialUsesServiceConfig(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "restarting")
	tests := []struct {
		method    string
		call      func(ctx context.Context, c pb.TerminalServiceClient) error
		wantErr   codes.Code
		wantCalls int
	}{
		{"Heartbeat", func(ctx context.Context, c pb.TerminalServiceClient) error {
			_, err := c.Heartbeat(ctx, &pb.HeartbeatRequest{})
			return err
		}, codes.OK, 3},
		{"Register", func(ctx context.Context, c pb.TerminalServiceClient) error {
			_, err := c.Register(ctx, &pb.RegisterRequest{})
			return err
		}, codes.Unavailable, 1},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			fake := &countingTerminal{script: []error{unavailable, unavailable}, calls: map[string]int{}}
			c := dialLoopback(t, func(gs *grpc.Server) { pb.RegisterTerminalServiceServer(gs, fake) })
			if err := tt.call(t.Context(), c.Terminal()); status.Code(err) != tt.wantErr {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			fake.mu.Lock()
			defer fake.mu.Unlock()
			if got := fake.calls[tt.method]; got != tt.wantCalls {
				t.Errorf("got %d calls of %s, want %d", got, tt.method, tt.wantCalls)
			}
		})
	}
}

// TestConnectionDoesNotRetryPayments checks that the SDK leaves the
// payment RPCs' retries to RetryPolicy: the connection does not retry
// them underneath, so that RetryPolicy.Attempts counts calls on the wire
// (one attempt, then the reversal of an unknown outcome, is a choice a
// terminal may make).
func TestConnectionDoesNotRetryPayments(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "restarting")
	fake := &refusingPayments{script: []error{unavailable, unavailable}}
	c := dialLoopback(t, func(gs *grpc.Server) { pb.RegisterPaymentServiceServer(gs, fake) })
	if _, err := c.Payment().Refund(t.Context(), &pb.RefundRequest{AuthorizationId: "A1"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("raw Refund: got %v, want Unavailable", err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.at) != 1 {
		t.Errorf("got %d Refund calls, want 1", len(fake.at))
	}
}

// refusingPayments refuses Refund with its script and records when each
// call arrived.
type refusingPayments struct {
	pb.UnimplementedPaymentServiceServer

	mu     sync.Mutex // guards the fields below
	script []error
	at     []time.Time
}

func (r *refusingPayments) Refund(context.Context, *pb.RefundRequest) (*pb.RefundResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.at = append(r.at, time.Now())
	if len(r.script) > 0 {
		err := r.script[0]
		r.script = r.script[1:]
		if err != nil {
			return nil, err
		}
	}
	return &pb.RefundResponse{}, nil
}

// rateLimitedStatus is the server's RATE_LIMITED refusal of quota with
// a RetryInfo of wait.
func rateLimitedStatus(t *testing.T, quota string, wait time.Duration) error {
	t.Helper()
	st, err := status.New(codes.ResourceExhausted, "over quota").WithDetails(
		&errdetails.ErrorInfo{Reason: "RATE_LIMITED", Domain: "posfleet.dev", Metadata: map[string]string{"quota": quota}},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

// TestRetriesWaitForRetryInfo checks that the SDK's retries wait at least
// the server's RetryInfo delay, retry a spent call quota but not a spent
// authentication budget, and give up at once when the delay outlasts the
// caller's deadline.
func TestRetriesWaitForRetryInfo(t *testing.T) {
	const wait = 300 * time.Millisecond
	tests := []struct {
		name      string
		refusal   error
		deadline  time.Duration
		wantCode  codes.Code
		wantCalls int
	}{
		{"quota: retried after the delay", rateLimitedStatus(t, "payment", wait), 10 * time.Second, codes.OK, 2},
		{"authentication budget: not retried", rateLimitedStatus(t, "authentication", wait), 10 * time.Second, codes.ResourceExhausted, 1},
		{"delay beyond the deadline: not retried", rateLimitedStatus(t, "payment", time.Minute), 30 * time.Second, codes.ResourceExhausted, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &refusingPayments{script: []error{tt.refusal}}
			c := dialLoopback(t, func(gs *grpc.Server) { pb.RegisterPaymentServiceServer(gs, fake) })
			ctx, cancel := context.WithTimeout(t.Context(), tt.deadline)
			defer cancel()
			start := time.Now()
			_, err := c.Refund(ctx, &pb.RefundRequest{AuthorizationId: "A1"})
			if status.Code(err) != tt.wantCode {
				t.Fatalf("got %v, want %v", err, tt.wantCode)
			}
			fake.mu.Lock()
			defer fake.mu.Unlock()
			if len(fake.at) != tt.wantCalls {
				t.Fatalf("got %d calls, want %d", len(fake.at), tt.wantCalls)
			}
			if tt.wantCalls > 1 {
				if gap := fake.at[1].Sub(fake.at[0]); gap < wait {
					t.Errorf("got %v between tries, want at least the RetryInfo delay %v", gap, wait)
				}
			} else if elapsed := time.Since(start); elapsed > 10*time.Second {
				// At once: well before the 30 s deadline, whatever the
				// machine's load.
				t.Errorf("gave up after %v, want at once", elapsed)
			}
		})
	}
}

// TestKeepaliveWithinServerPolicy checks the SDK's keepalive against the
// server's enforcement: pinging more often than the server allows gets
// the connection closed with GOAWAY too_many_pings.
func TestKeepaliveWithinServerPolicy(t *testing.T) {
	policy := server.DefaultConfig(t.TempDir()).MinClientPingInterval
	if client.KeepaliveTime < policy {
		t.Errorf("got KeepaliveTime %v, want at least the server's MinClientPingInterval %v", client.KeepaliveTime, policy)
	}
}
