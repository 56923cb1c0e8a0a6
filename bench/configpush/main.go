// Command configpush measures config push propagation: the time from
// PublishConfig until every one of N watching terminals has received the
// new version on its WatchConfig stream.
//
//	go run ./bench/configpush                      # 10,000 terminals, 5 rounds
//	go run ./bench/configpush -terminals 2000 -rounds 3 -conns 16
//
// It starts a posfleet server in this process (data on disk in a temporary
// directory), provisions and registers the terminals over gRPC, opens one
// WatchConfig stream per terminal (multiplexed over -conns connections, as
// many terminals behind one store gateway would be), then publishes a
// global config -rounds times. For each round it records, per terminal, the
// time from the start of the PublishConfig call to the arrival of the new
// version, and prints p50/p99/max over all terminals and the time until
// the last one had it. With -ack (default) every terminal acknowledges each
// version with AckConfig as a real terminal would, so the server handles
// the acknowledgement storm while it pushes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "configpush:", err)
		os.Exit(1)
	}
}

type options struct {
	terminals, conns, rounds, setupWorkers int
	ack                                    bool
	dataDir                                string
	settle                                 time.Duration
}

func run() error {
	var o options
	flag.IntVar(&o.terminals, "terminals", 10000, "watching terminals")
	flag.IntVar(&o.conns, "conns", 64, "client connections the watch streams are spread over")
	flag.IntVar(&o.rounds, "rounds", 5, "publishes to measure")
	flag.IntVar(&o.setupWorkers, "setup-workers", 64, "concurrent provision/register calls during setup")
	flag.BoolVar(&o.ack, "ack", true, "acknowledge every version with AckConfig")
	flag.StringVar(&o.dataDir, "data-dir", "", "server data directory (default: a new temporary directory)")
	flag.DurationVar(&o.settle, "settle", time.Second, "pause between rounds")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the measured rounds to this file")
	flag.Parse()
	if o.terminals < 1 || o.conns < 1 || o.rounds < 1 || o.setupWorkers < 1 {
		return errors.New("-terminals, -conns, -rounds and -setup-workers must be positive")
	}
	if o.dataDir == "" {
		d, err := os.MkdirTemp("", "posfleet-configpush-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.dataDir = d
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The server, in this process, with its data on disk.
	const adminToken = "pfa_bench-configpush-admin-token-000000"
	cfg := server.DefaultConfig(o.dataDir)
	cfg.AdminToken = adminToken
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srvCtx, stopSrv := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(srvCtx, lis) }()
	defer func() { stopSrv(); <-served }()
	addr := lis.Addr().String()

	admin, err := client.Dial(addr, client.WithInsecure(), client.WithBearer(adminToken), client.WithDefaultTimeout(time.Minute))
	if err != nil {
		return err
	}
	defer admin.Close()
	creds, known, err := setup(ctx, admin, addr, o)
	if err != nil {
		return err
	}

	conns := make([]*grpc.ClientConn, o.conns)
	for i := range conns {
		if conns[i], err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			return err
		}
		defer conns[i].Close()
	}
	f := newFleet(o.terminals)
	start := time.Now()
	for i := range o.terminals {
		term := pb.NewTerminalServiceClient(conns[i%o.conns])
		go f.watch(ctx, i, term, creds[i], known, o.ack)
	}
	if err := f.waitOpen(ctx, 2*time.Minute); err != nil {
		return err
	}
	fmt.Printf("watch streams open: %d over %d connections in %s\n", o.terminals, o.conns, time.Since(start).Round(time.Millisecond))
	fmt.Printf("machine: %d CPUs (GOMAXPROCS %d), %s; server and terminals in one process over loopback\n\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())

	if *cpuProfile != "" {
		pf, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	all := hdr.New(1, int64(10*time.Minute), 3)
	var maxes []time.Duration // exact per-round maxima
	fmt.Printf("%-6s %-8s %12s %10s %10s %18s\n", "round", "version", "publish RPC", "p50", "p99", "max (all reached)")
	for r := range o.rounds {
		time.Sleep(o.settle)
		f.resetRound()
		t0 := time.Now()
		resp, err := admin.Admin().PublishConfig(ctx, &pb.PublishConfigRequest{
			Scope:       &pb.ConfigScope{},
			Settings:    &pb.Settings{Extra: map[string]string{"bench.round": fmt.Sprint(r)}, HeartbeatInterval: durationpb.New(time.Duration(30+r) * time.Second)},
			Description: "configpush benchmark round " + fmt.Sprint(r),
		})
		if err != nil {
			return fmt.Errorf("round %d: PublishConfig: %w", r, err)
		}
		publish := time.Since(t0)
		lat, err := f.waitRound(ctx, resp.GetVersion(), t0, 2*time.Minute)
		if err != nil {
			return fmt.Errorf("round %d: %w", r, err)
		}
		h := hdr.New(1, int64(10*time.Minute), 3)
		var worst time.Duration
		for _, d := range lat {
			h.RecordValue(max(int64(d), 1))
			all.RecordValue(max(int64(d), 1))
			worst = max(worst, d)
		}
		maxes = append(maxes, worst)
		fmt.Printf("%-6d %-8d %12s %10s %10s %18s\n", r+1, resp.GetVersion(), ms(publish),
			ms(time.Duration(h.ValueAtQuantile(50))), ms(time.Duration(h.ValueAtQuantile(99))), ms(worst))
		if o.ack {
			if err := f.waitAcks(ctx, 2*time.Minute); err != nil {
				return fmt.Errorf("round %d: %w", r, err)
			}
		}
	}
	fmt.Printf("\nall rounds (%d terminal receipts): p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", all.TotalCount(),
		ms(time.Duration(all.ValueAtQuantile(50))), ms(time.Duration(all.ValueAtQuantile(90))),
		ms(time.Duration(all.ValueAtQuantile(99))), ms(time.Duration(all.ValueAtQuantile(99.9))), ms(slices.Max(maxes)))
	fmt.Printf("messages received: %d for %d rounds × %d terminals; repeats or stale versions: %d; broken streams: %d; failed acks: %d\n",
		f.messages.Load(), o.rounds, o.terminals, f.stale.Load(), f.broken.Load(), f.ackErrs.Load())
	if f.stale.Load() > 0 || f.broken.Load() > 0 || f.ackErrs.Load() > 0 {
		return errors.New("the run saw repeats, broken streams or failed acknowledgements")
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

// setup creates a merchant with stores, then provisions and registers the
// terminals; it returns their credentials and the config version they got.
func setup(ctx context.Context, admin *client.Client, addr string, o options) ([]string, uint64, error) {
	start := time.Now()
	const merchant, stores = "BENCH1", 100
	if _, err := admin.CreateMerchant(ctx, &pb.Merchant{MerchantId: merchant, LegalName: "Bench Retail Ltd", Mcc: "5411", Currency: "NZD"}); err != nil {
		return nil, 0, err
	}
	for s := range stores {
		if _, err := admin.CreateStore(ctx, &pb.Store{MerchantId: merchant, StoreId: fmt.Sprintf("st-%03d", s), Name: "Store"}); err != nil {
			return nil, 0, err
		}
	}
	anon, err := client.Dial(addr, client.WithInsecure(), client.WithDefaultTimeout(time.Minute))
	if err != nil {
		return nil, 0, err
	}
	defer anon.Close()
	creds := make([]string, o.terminals)
	var known atomic.Uint64
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, o.setupWorkers)
	for range o.setupWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= o.terminals || ctx.Err() != nil {
					return
				}
				serial := fmt.Sprintf("BENCH-SN-%06d", i)
				p, err := admin.ProvisionTerminal(ctx, serial, merchant, fmt.Sprintf("st-%03d", i%stores), "", time.Hour)
				if err != nil {
					errc <- fmt.Errorf("provision %s: %w", serial, err)
					return
				}
				reg, err := anon.Register(ctx, serial, p.GetEnrollmentCode(), &pb.DeviceInfo{Model: "bench"})
				if err != nil {
					errc <- fmt.Errorf("register %s: %w", serial, err)
					return
				}
				creds[i] = reg.GetCredential()
				known.Store(reg.GetConfig().GetVersion())
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, 0, err
	}
	fmt.Printf("setup: %d terminals in %d stores provisioned and registered in %s\n", o.terminals, stores, time.Since(start).Round(time.Millisecond))
	return creds, known.Load(), nil
}

// fleet is the watching terminals' shared bookkeeping.
type fleet struct {
	n       int
	open    atomic.Int64
	version []atomic.Uint64 // newest version received, per terminal
	at      []atomic.Int64  // when it arrived (Unix ns), per terminal
	acked   atomic.Int64    // acknowledgements sent this round

	messages, stale, broken, ackErrs atomic.Int64
}

func newFleet(n int) *fleet {
	return &fleet{n: n, version: make([]atomic.Uint64, n), at: make([]atomic.Int64, n)}
}

// watch keeps terminal i's stream open and records what arrives.
func (f *fleet) watch(ctx context.Context, i int, term pb.TerminalServiceClient, cred string, known uint64, ack bool) {
	mctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+cred)
	opened := false
	for ctx.Err() == nil {
		stream, err := term.WatchConfig(mctx, &pb.WatchConfigRequest{KnownVersion: max(known, f.version[i].Load())})
		if err != nil {
			f.broken.Add(1)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		// The server sends headers once the watch is registered.
		if _, err := stream.Header(); err == nil && !opened {
			opened = true
			f.open.Add(1)
		}
		for {
			msg, err := stream.Recv()
			if err != nil {
				if ctx.Err() == nil {
					f.broken.Add(1)
				}
				break
			}
			now := time.Now().UnixNano()
			v := msg.GetVersion()
			if v == 0 {
				continue
			}
			f.messages.Add(1)
			if v <= f.version[i].Load() {
				f.stale.Add(1)
				continue
			}
			f.at[i].Store(now)
			f.version[i].Store(v)
			if ack {
				actx, cancel := context.WithTimeout(mctx, time.Minute)
				_, err := term.AckConfig(actx, &pb.AckConfigRequest{Version: v, Result: pb.ConfigApplyResult_CONFIG_APPLY_RESULT_APPLIED})
				cancel()
				if err != nil {
					f.ackErrs.Add(1)
				}
				f.acked.Add(1)
			}
		}
	}
}

// waitOpen waits until every stream is established.
func (f *fleet) waitOpen(ctx context.Context, limit time.Duration) error {
	return waitFor(ctx, limit, func() bool { return f.open.Load() >= int64(f.n) },
		func() error { return fmt.Errorf("only %d of %d watch streams opened", f.open.Load(), f.n) })
}

func (f *fleet) resetRound() { f.acked.Store(0) }

// waitRound waits until every terminal has version v and returns each
// terminal's delay after t0. Polling does not affect the figures: each
// stream records its own arrival time.
func (f *fleet) waitRound(ctx context.Context, v uint64, t0 time.Time, limit time.Duration) ([]time.Duration, error) {
	have := func() int {
		n := 0
		for i := range f.n {
			if f.version[i].Load() >= v {
				n++
			}
		}
		return n
	}
	err := waitFor(ctx, limit, func() bool { return have() == f.n },
		func() error {
			return fmt.Errorf("after %s only %d of %d terminals have version %d", limit, have(), f.n, v)
		})
	if err != nil {
		return nil, err
	}
	out := make([]time.Duration, f.n)
	for i := range out {
		out[i] = time.Duration(f.at[i].Load() - t0.UnixNano())
	}
	return out, nil
}

// waitAcks waits until every terminal acknowledged the round's version.
func (f *fleet) waitAcks(ctx context.Context, limit time.Duration) error {
	return waitFor(ctx, limit, func() bool { return f.acked.Load() >= int64(f.n) },
		func() error { return fmt.Errorf("only %d of %d acknowledgements sent", f.acked.Load(), f.n) })
}

// waitFor polls ok every millisecond until it holds, ctx ends or limit
// passes (then it returns fail()).
func waitFor(ctx context.Context, limit time.Duration, ok func() bool, fail func() error) error {
	deadline := time.Now().Add(limit)
	for !ok() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fail()
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}
