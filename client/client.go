package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// DefaultTimeout is the deadline given to unary calls that have none.
const DefaultTimeout = 10 * time.Second

// KeepaliveTime is how often the client pings an idle connection. The
// server refuses pings more frequent than every 20 seconds (GOAWAY
// too_many_pings); see the TerminalService comment in terminal.proto.
const KeepaliveTime = 30 * time.Second

// Option configures Dial.
type Option func(*options)

type options struct {
	bearer   string
	tls      *tls.Config
	insecure bool
	timeout  time.Duration
	dialOpts []grpc.DialOption
	// order and observer are set by WithTargetKey or WithTargetIndex, and
	// WithNodeObserver (see targets.go).
	order    func([]string) []string
	observer func(NodeCall)
	// setAside is WithSetAside's duration, if setAsideGiven.
	setAside      time.Duration
	setAsideGiven bool
}

// WithBearer sends secret as "authorization: Bearer <secret>" on every call:
// a terminal credential or an admin token.
func WithBearer(secret string) Option { return func(o *options) { o.bearer = secret } }

// WithTLS connects over TLS with cfg (nil: system roots).
func WithTLS(cfg *tls.Config) Option {
	return func(o *options) {
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		o.tls = cfg
	}
}

// WithInsecure connects in plaintext, for loopback and tests.
func WithInsecure() Option { return func(o *options) { o.insecure = true } }

// WithDefaultTimeout sets the deadline of unary calls without one
// (DefaultTimeout when not given; zero or negative leaves calls unbounded).
func WithDefaultTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithDialOptions adds raw gRPC dial options.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOpts = append(o.dialOpts, opts...) }
}

// Client is a connection to a posfleet server. It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn
	// bearer is the credential sent on each call; RotateAndSwitch
	// replaces it. Nil when the client was dialed without one.
	bearer  atomic.Pointer[string]
	timeout time.Duration
	nodes   *nodeSet // nil for a single target
}

// Dial creates a client for target: "host:port", or several of them
// separated by commas for a cluster of interchangeable nodes (see the
// package documentation, "Several nodes"). The connection is established
// lazily on the first call.
func Dial(target string, opts ...Option) (*Client, error) {
	o := options{timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.tls == nil && !o.insecure {
		return nil, errors.New("client: choose WithTLS or WithInsecure")
	}
	targets, err := SplitTargets(target)
	if err != nil {
		return nil, err
	}
	c := &Client{timeout: o.timeout}
	if o.bearer != "" {
		c.bearer.Store(&o.bearer)
	}
	sc := serviceConfig
	dialTarget := targets[0]
	var dopts []grpc.DialOption
	if len(targets) > 1 {
		if !o.setAsideGiven {
			o.setAside = DefaultSetAside
		}
		c.nodes = newNodeSet(targets, o.order, o.setAside)
		dialTarget = c.nodes.dialTarget()
		if sc, err = c.nodes.serviceConfig(sc); err != nil {
			return nil, err
		}
		dopts = append(dopts, grpc.WithResolvers(c.nodes.r))
	}
	interceptors := []grpc.UnaryClientInterceptor{c.defaultDeadline}
	if o.observer != nil || c.nodes != nil {
		nc := &nodeCalls{names: newNodeNames(targets), observer: o.observer, set: c.nodes}
		interceptors = append(interceptors, nc.unary)
		dopts = append(dopts, grpc.WithChainStreamInterceptor(nc.stream))
	}
	dopts = append(dopts,
		grpc.WithChainUnaryInterceptor(interceptors...),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: KeepaliveTime, Timeout: 10 * time.Second}),
		// The published deadlines and retry policy (see serviceConfig),
		// with the pick_first policy over several targets; a service
		// config from the name resolver, or a later WithDialOptions,
		// takes precedence.
		grpc.WithDefaultServiceConfig(sc),
	)
	if o.tls != nil {
		dopts = append(dopts, grpc.WithTransportCredentials(credentials.NewTLS(o.tls)))
	} else {
		dopts = append(dopts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if o.bearer != "" {
		dopts = append(dopts, grpc.WithPerRPCCredentials(bearerCreds{secret: &c.bearer, requireTLS: o.tls != nil}))
	}
	dopts = append(dopts, o.dialOpts...)
	conn, err := grpc.NewClient(dialTarget, dopts...)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", target, err)
	}
	c.conn = conn
	return c, nil
}

// Close closes the connection.
func (c *Client) Close() error {
	if c.nodes != nil {
		c.nodes.close()
	}
	return c.conn.Close()
}

// Conn returns the underlying connection, for other gRPC services.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Terminal returns the raw TerminalService stub.
func (c *Client) Terminal() pb.TerminalServiceClient { return pb.NewTerminalServiceClient(c.conn) }

// Payment returns the raw PaymentService stub.
func (c *Client) Payment() pb.PaymentServiceClient { return pb.NewPaymentServiceClient(c.conn) }

// Admin returns the raw AdminService stub.
func (c *Client) Admin() pb.AdminServiceClient { return pb.NewAdminServiceClient(c.conn) }

// Health checks the server's health (service "" for the whole server).
func (c *Client) Health(ctx context.Context, service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	resp, err := healthpb.NewHealthClient(c.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN, err
	}
	return resp.GetStatus(), nil
}

func (c *Client) defaultDeadline(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if _, ok := ctx.Deadline(); !ok && c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// bearerCreds attaches the client's current bearer secret to each call.
type bearerCreds struct {
	secret     *atomic.Pointer[string]
	requireTLS bool
}

func (b bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + *b.secret.Load()}, nil
}

// currentBearer returns the credential the client sends now ("" for none).
func (c *Client) currentBearer() string {
	if p := c.bearer.Load(); p != nil {
		return *p
	}
	return ""
}

func (b bearerCreds) RequireTransportSecurity() bool { return b.requireTLS }
