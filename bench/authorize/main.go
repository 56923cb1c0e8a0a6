// Command authorize measures durable Authorize throughput over gRPC on
// loopback against the same machine's ceiling for a trivial gRPC call, the
// standard health check, and reports their ratio.
//
//	go run ./bench/authorize                         # 128 workers, 8 connections, 3 rounds
//	go run ./bench/authorize -workers 256 -rounds 5 -duration 15s
//
// It builds and starts the real posfleet binary (data on disk in a
// temporary directory, synced commits as in production), provisions a
// merchant, a store and -terminals registered terminals, and then, for each
// round, drives the health check and then Authorize with the same client
// machinery: the loadgen package's open-loop generator, offered far more
// than the server can take (-rate, uniform arrivals) so that the achieved
// rate is the capacity, with the same -workers over the same -conns
// connections. Every Authorize is a new request (a fresh request_id and
// card token) that the server approves only after the synced commit holding
// it returned. The ratio of the medians is the result; see README.md.
package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/posfleet/posfleet/client"
	"github.com/posfleet/posfleet/loadgen"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "authorize:", err)
		os.Exit(1)
	}
}

type options struct {
	workers, conns, terminals, rounds int
	standbys                          int
	rate                              float64
	duration, warmup                  time.Duration
	binary, cpuProfile, srvProfile    string
	inProcess                         bool
	serverEnv, serverArgs             envList
}

// envList collects a repeated flag (-server-env, -server-arg).
type envList []string

func (l *envList) String() string     { return fmt.Sprint(*l) }
func (l *envList) Set(v string) error { *l = append(*l, v); return nil }

func run() error {
	var o options
	flag.IntVar(&o.workers, "workers", 128, "concurrent calls (loadgen workers), the same for both calls")
	flag.IntVar(&o.conns, "conns", 8, "client connections the workers share")
	flag.IntVar(&o.terminals, "terminals", 128, "registered terminals the Authorize workers take turns with")
	flag.IntVar(&o.rounds, "rounds", 3, "health/Authorize pairs to measure")
	flag.Float64Var(&o.rate, "rate", 200000, "offered rate per second (above capacity: the achieved rate is the ceiling)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per phase")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up per phase")
	flag.StringVar(&o.binary, "posfleet", "", "posfleet binary to run (default: build ./cmd/posfleet)")
	flag.Var(&o.serverEnv, "server-env", "KEY=VALUE added to the posfleet process's environment, e.g. GOGC=400 (repeatable)")
	flag.Var(&o.serverArgs, "server-arg", "argument added to posfleet serve, e.g. -server-arg=--store=postgres (repeatable)")
	flag.IntVar(&o.standbys, "standbys", 0, "hot standbys to start on the server's database once it serves (needs -server-arg=--store=postgres): posfleet serve processes that wait for the writer role")
	flag.BoolVar(&o.inProcess, "inprocess", false, "run the server in this process instead of the posfleet binary (for profiling)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write CPU profiles of each phase to FILE.<phase>.<round> (with -inprocess they include the server)")
	flag.StringVar(&o.srvProfile, "server-cpuprofile", "", "write CPU profiles of the posfleet process for each phase to FILE.<phase>.<round> (fetched from its --pprof endpoint)")
	flag.Parse()
	if o.srvProfile != "" && o.inProcess {
		return errors.New("-server-cpuprofile profiles the posfleet process; with -inprocess use -cpuprofile")
	}
	if o.workers < 1 || o.conns < 1 || o.terminals < 1 || o.rounds < 1 || o.rate <= 0 {
		return errors.New("-workers, -conns, -terminals, -rounds and -rate must be positive")
	}
	if o.standbys < 0 || o.standbys > 0 && (o.inProcess || !slices.Contains(o.serverArgs, "--store=postgres")) {
		return errors.New("-standbys needs the posfleet binary on PostgreSQL (-server-arg=--store=postgres)")
	}
	ctx := context.Background()
	work, err := os.MkdirTemp("", "posfleet-bench-authorize-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	var srv *serverProc
	if o.inProcess {
		srv, err = startInProcess(work)
	} else {
		srv, err = startBinary(o, work)
	}
	if err != nil {
		return err
	}
	defer srv.stop()
	for i := range o.standbys {
		sb, err := startStandby(o, srv, work, i)
		if err != nil {
			return err
		}
		// Deferred after the server's stop, so run first: a standby
		// stopped before the server does not take over from it.
		defer sb.stop()
	}

	admin, err := client.Dial(srv.addr, client.WithInsecure(), client.WithBearer(srv.token))
	if err != nil {
		return err
	}
	defer admin.Close()
	creds, err := setup(ctx, admin, o.terminals)
	if err != nil {
		return err
	}
	var conns []grpc.ClientConnInterface
	for range o.conns {
		c, err := client.Dial(srv.addr, client.WithInsecure(), client.WithDefaultTimeout(0))
		if err != nil {
			return err
		}
		defer c.Close()
		conns = append(conns, c.Conn())
	}

	if srv.debugAddr != "" {
		fmt.Fprintf(os.Stderr, "server profiles at http://%s/debug/pprof/\n", srv.debugAddr)
	}
	fmt.Fprintf(os.Stderr, "server %s (%d hot standbys), %d workers over %d connections, %d terminals, offered %.0f/s, %v per phase\n",
		srv.addr, o.standbys, o.workers, o.conns, o.terminals, o.rate, o.duration)
	var health, auth []phase
	for r := range o.rounds {
		hexec, err := loadgen.NewHealthExecutor(conns, "", 10*time.Second)
		if err != nil {
			return err
		}
		stop, err := profile(o, srv, "health", r)
		if err != nil {
			return err
		}
		h, err := measure(ctx, o, srv, hexec)
		if err := errors.Join(err, stop()); err != nil {
			return err
		}
		stop, err = profile(o, srv, "authorize", r)
		if err != nil {
			return err
		}
		before := srv.commits()
		a, err := measure(ctx, o, srv, newAuthorizeExecutor(conns, creds, r, o.workers))
		if err := errors.Join(err, stop()); err != nil {
			return err
		}
		a.groupCommit = srv.commits().since(before)
		health, auth = append(health, h), append(auth, a)
		fmt.Fprintf(os.Stderr, "round %d: health %.0f/s, authorize %.0f/s, ratio %.3f; CPU per call %.1fµs vs %.1fµs; %s\n",
			r+1, h.res.AchievedRate, a.res.AchievedRate, a.res.AchievedRate/h.res.AchievedRate, h.cpuPerCall(), a.cpuPerCall(), a.groupCommit)
	}
	report(os.Stdout, o, health, auth)
	if srv.exited() {
		return errors.New("the server exited during the run; see its log above")
	}
	return nil
}

// profile starts the CPU profiles of one phase that -cpuprofile and
// -server-cpuprofile ask for; the returned function stops them.
func profile(o options, srv *serverProc, phase string, round int) (func() error, error) {
	var stops []func() error
	stopAll := func() error {
		var errs []error
		for _, s := range stops {
			errs = append(errs, s())
		}
		return errors.Join(errs...)
	}
	if o.cpuProfile != "" {
		f, err := os.Create(fmt.Sprintf("%s.%s.%d", o.cpuProfile, phase, round+1))
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
		stops = append(stops, func() error {
			pprof.StopCPUProfile()
			return f.Close()
		})
	}
	if o.srvProfile != "" {
		// The server profiles for as long as the phase runs (warm-up
		// included, like the CPU times); the phase's drain may cut it
		// short by a little.
		secs := int((o.warmup + o.duration).Round(time.Second) / time.Second)
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", srv.debugAddr, secs)
		name := fmt.Sprintf("%s.%s.%d", o.srvProfile, phase, round+1)
		errc := make(chan error, 1)
		go func() { errc <- fetch(url, name) }()
		stops = append(stops, func() error { return <-errc })
	}
	return stopAll, nil
}

// fetch saves the body of url to the file name.
func fetch(url, name string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// phase is one measured phase: the generator's result and the CPU both
// processes used while it ran.
type phase struct {
	res *loadgen.Result
	// genCPU is this process's CPU time, srvCPU the server process's (zero
	// with -inprocess, where genCPU covers both).
	genCPU, srvCPU time.Duration
	// groupCommit is the server's group commit during the phase (zero
	// with -inprocess).
	groupCommit commitCount
}

// calls returns the calls answered without error in the whole phase
// (warm-up included, like the CPU times). The generator also records each
// arrival as a whole under loadgen.OpTxn; that is the same call again and
// is not counted.
func (p phase) calls() int64 {
	var n int64
	for _, iv := range p.res.Intervals {
		for name, op := range iv.Ops {
			if name != loadgen.OpTxn {
				n += op.Count - op.Errors
			}
		}
	}
	return n
}

// cpuPerCall returns the CPU microseconds per answered call of both
// processes together.
func (p phase) cpuPerCall() float64 { return p.perCall(p.genCPU + p.srvCPU) }

// perCall returns d in microseconds per answered call.
func (p phase) perCall(d time.Duration) float64 {
	n := p.calls()
	if n == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(n)
}

// measure drives one phase and records the CPU it took.
func measure(ctx context.Context, o options, srv *serverProc, exec loadgen.Executor) (phase, error) {
	g0 := selfCPU()
	s0, _ := srv.cpu()
	res, err := drive(ctx, o, exec)
	if err != nil {
		return phase{}, err
	}
	s1, _ := srv.cpu()
	return phase{res: res, genCPU: selfCPU() - g0, srvCPU: s1 - s0}, nil
}

// selfCPU returns this process's CPU time (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU reads another process's CPU time from /proc (Linux).
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// Fields after the command name, which is in parentheses: state is
	// field 3; utime and stime are fields 14 and 15, in clock ticks.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	stt, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(ut+stt) * time.Second / ticksPerSecond, true
}

// drive runs one phase and returns its result.
func drive(ctx context.Context, o options, exec loadgen.Executor) (*loadgen.Result, error) {
	prof, err := loadgen.Builtin(loadgen.ProfileSteady, o.rate, o.duration, o.warmup)
	if err != nil {
		return nil, err
	}
	run, err := loadgen.NewRun(loadgen.Config{
		Profile:    prof,
		Arrivals:   loadgen.Uniform,
		Users:      o.workers,
		Assignment: loadgen.Shared,
		QueueDepth: 4096,
		Drain:      10 * time.Second,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	if err := run.Drive(ctx, exec); err != nil {
		return nil, err
	}
	return run.Finish(), nil
}

// authorizeExecutor makes one Authorize per arrival: worker u acts for
// terminal u mod len(creds), each call a new sale that the issuer simulator
// approves.
type authorizeExecutor struct {
	stubs []pb.PaymentServiceClient
	mds   []metadata.MD // per terminal: the bearer credential
	round int
	// seq numbers requests per worker; each worker touches only its own.
	seq []uint64
}

func newAuthorizeExecutor(conns []grpc.ClientConnInterface, creds []string, round, workers int) *authorizeExecutor {
	e := &authorizeExecutor{round: round, seq: make([]uint64, workers)}
	for _, c := range conns {
		e.stubs = append(e.stubs, pb.NewPaymentServiceClient(c))
	}
	for _, cred := range creds {
		e.mds = append(e.mds, metadata.Pairs("authorization", "Bearer "+cred))
	}
	return e
}

func (e *authorizeExecutor) Execute(ctx context.Context, user int, a loadgen.Arrival, rec loadgen.Recorder) loadgen.Outcome {
	term := user % len(e.mds)
	e.seq[user]++
	id := "b" + strconv.Itoa(e.round) + "-" + strconv.Itoa(user) + "-" + strconv.FormatUint(e.seq[user], 10)
	cctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(ctx, e.mds[term]), 10*time.Second)
	defer cancel()
	sent := time.Now()
	resp, err := e.stubs[user%len(e.stubs)].Authorize(cctx, &pb.AuthorizeRequest{
		RequestId:  id,
		MerchantId: "M1",
		Amount:     &pb.Money{MinorUnits: 1250, Currency: "NZD"},
		Card:       &pb.Card{Token: "tok_bench_" + id, MaskedPan: "411111******1111", EntryMode: pb.EntryMode_ENTRY_MODE_CONTACTLESS},
		Capture:    true,
	})
	done := time.Now()
	o := loadgen.ErrorOutcome(err)
	if err == nil {
		if resp.GetDecision() == pb.Decision_DECISION_APPROVED {
			o = loadgen.OK()
		} else {
			o = loadgen.Declined(resp.GetResponseCode())
		}
	}
	rec.Call(loadgen.OpAuthorize, a.Intended, sent, done, o)
	return o
}

// setup creates a merchant and a store and registers n terminals; it
// returns their credentials.
func setup(ctx context.Context, admin *client.Client, n int) ([]string, error) {
	if _, err := admin.CreateMerchant(ctx, &pb.Merchant{MerchantId: "M1", LegalName: "Bench Ltd", Mcc: "5411", Currency: "NZD"}); err != nil {
		return nil, err
	}
	if _, err := admin.CreateStore(ctx, &pb.Store{MerchantId: "M1", StoreId: "S1", Name: "Bench store"}); err != nil {
		return nil, err
	}
	creds := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			serial := fmt.Sprintf("BENCH-%05d", i)
			p, err := admin.ProvisionTerminal(ctx, serial, "M1", "S1", "", time.Hour)
			if err != nil {
				errs[i] = err
				return
			}
			reg, err := admin.Register(ctx, serial, p.GetEnrollmentCode(), &pb.DeviceInfo{Model: "bench"})
			if err != nil {
				errs[i] = err
				return
			}
			creds[i] = reg.GetCredential()
		})
	}
	wg.Wait()
	return creds, errors.Join(errs...)
}

// report prints the rounds, the ratio of the medians and the CPU cost per
// call of each phase (generator and server together), whose ratio is what
// the throughput ratio tends to when both are CPU-bound, and which other
// load on the machine disturbs less than throughput.
func report(w io.Writer, o options, health, auth []phase) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round\thealth/s\tauthorize/s\tratio\thealth µs CPU/call (server)\tauthorize µs CPU/call (server)\tCPU ratio\thealth p99\tauthorize p99\tauthorize errors\t")
	for i := range health {
		h, a := health[i], auth[i]
		ao, ho := a.res.Op(loadgen.OpAuthorize), h.res.Op(loadgen.OpHealth)
		if ao == nil || ho == nil {
			continue
		}
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.3f\t%.1f (%.1f)\t%.1f (%.1f)\t%.3f\t%s\t%s\t%d\t\n", i+1, h.res.AchievedRate, a.res.AchievedRate,
			a.res.AchievedRate/h.res.AchievedRate, h.cpuPerCall(), h.perCall(h.srvCPU), a.cpuPerCall(), a.perCall(a.srvCPU), h.cpuPerCall()/a.cpuPerCall(),
			ms(ho.Latency.P99), ms(ao.Latency.P99), ao.Errors)
	}
	tw.Flush()
	rate := func(p phase) float64 { return p.res.AchievedRate }
	cpu := func(p phase) float64 { return p.cpuPerCall() }
	hm, am := median(health, rate), median(auth, rate)
	hc, ac := median(health, cpu), median(auth, cpu)
	fmt.Fprintf(w, "\nmedian: health %.0f/s, durable authorize %.0f/s, ratio %.3f; CPU per call %.1fµs vs %.1fµs, ratio %.3f (%d workers, %d connections)\n",
		hm, am, am/hm, hc, ac, hc/ac, o.workers, o.conns)
	var gc commitCount
	for _, a := range auth {
		gc.commits += a.groupCommit.commits
		gc.decisions += a.groupCommit.decisions
		gc.seconds += a.groupCommit.seconds
	}
	if gc.commits > 0 {
		secs := float64(len(auth)) * (o.warmup + o.duration).Seconds()
		fmt.Fprintf(w, "authorize phases (warm-up included): %s, %.0f commits/s\n", gc, gc.commits/secs)
	}
}

func median(ps []phase, f func(phase) float64) float64 {
	v := make([]float64, len(ps))
	for i, p := range ps {
		v[i] = f(p)
	}
	slices.SortFunc(v, cmp.Compare[float64])
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func ms(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + "ms" }

// serverProc is the server under test: the posfleet binary or, with
// -inprocess, a server in this process.
type serverProc struct {
	addr  string
	token string
	// debugAddr serves the posfleet process's /debug/pprof/ (with
	// -server-cpuprofile).
	debugAddr string
	// metricsAddr serves the posfleet process's /metrics ("" with
	// -inprocess).
	metricsAddr string
	// cpu returns the server process's CPU time so far (user + system), or
	// false when it runs in this process.
	cpu func() (time.Duration, bool)
	// exited reports whether the server stopped on its own.
	exited func() bool
	stop   func()
	// bin and tokenFile are the posfleet binary and the admin token file
	// the server runs with ("" with -inprocess).
	bin, tokenFile string
}

var (
	reServing = regexp.MustCompile(`msg=serving addr=(\S+)`)
	reQuiet   = regexp.MustCompile(`level=(INFO|DEBUG)`)
)

func newToken() string { return "pfa_bench-authorize-" + strconv.FormatInt(time.Now().UnixNano(), 36) }

// startBinary builds posfleet (unless -posfleet names a binary) and runs
// posfleet serve on a temporary data directory.
func startBinary(o options, work string) (*serverProc, error) {
	bin := o.binary
	if bin == "" {
		bin = filepath.Join(work, "posfleet")
		fmt.Fprintln(os.Stderr, "building posfleet")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/posfleet/posfleet/cmd/posfleet").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build: %w\n%s", err, out)
		}
	}
	token := newToken()
	tokenFile := filepath.Join(work, "admin.token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		return nil, err
	}
	args := []string{"serve", "--listen", "127.0.0.1:0", "--console-listen", "off", "--data-dir", filepath.Join(work, "data"),
		"--admin-token-file", tokenFile, "--log-level", "info"}
	// The metrics listener tells the group commit's size; with
	// -server-cpuprofile it serves the profiles too.
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	metricsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args = append(args, "--metrics-listen", metricsAddr)
	var debugAddr string
	if o.srvProfile != "" {
		debugAddr = metricsAddr
		args = append(args, "--pprof")
	}
	args = append(args, o.serverArgs...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), o.serverEnv...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if m := reServing.FindStringSubmatch(line); m != nil {
				addrc <- m[1]
			} else if !reQuiet.MatchString(line) {
				fmt.Fprintln(os.Stderr, "server:", line)
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		cmd.Wait()
		close(done)
	}()
	s := &serverProc{
		bin:         bin,
		tokenFile:   tokenFile,
		token:       token,
		debugAddr:   debugAddr,
		metricsAddr: metricsAddr,
		cpu:         func() (time.Duration, bool) { return procCPU(cmd.Process.Pid) },
		exited: func() bool {
			select {
			case <-done:
				return true
			default:
				return false
			}
		},
		stop: func() {
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		},
	}
	select {
	case s.addr = <-addrc:
		return s, nil
	case <-done:
		return nil, errors.New("posfleet exited before serving")
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		return nil, errors.New("posfleet did not start serving within 60s")
	}
}

// standbyProc is a hot standby of the server: a posfleet serve on the
// same database waiting for the writer role.
type standbyProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

var reStandby = regexp.MustCompile(`msg="answering as a standby"`)

// startStandby starts the i-th hot standby of srv with the same server
// arguments and waits until it answers as a standby.
func startStandby(o options, srv *serverProc, work string, i int) (*standbyProc, error) {
	args := []string{"serve", "--listen", "127.0.0.1:0", "--console-listen", "off",
		"--data-dir", filepath.Join(work, fmt.Sprintf("standby-%d", i)), "--admin-token-file", srv.tokenFile, "--log-level", "info"}
	args = append(args, o.serverArgs...)
	cmd := exec.Command(srv.bin, args...)
	cmd.Env = append(os.Environ(), o.serverEnv...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sb := &standbyProc{cmd: cmd, done: make(chan struct{})}
	standby := make(chan struct{})
	serving := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		waiting := false
		for sc.Scan() {
			line := sc.Text()
			switch {
			case !waiting && reStandby.MatchString(line):
				waiting = true
				close(standby)
			case reServing.MatchString(line):
				serving <- struct{}{}
			case !reQuiet.MatchString(line):
				fmt.Fprintf(os.Stderr, "standby %d: %s\n", i, line)
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		cmd.Wait()
		close(sb.done)
	}()
	select {
	case <-standby:
		return sb, nil
	case <-serving:
		sb.stop()
		return nil, fmt.Errorf("standby %d serves: it is not on the server's database", i)
	case <-sb.done:
		return nil, fmt.Errorf("standby %d exited before answering", i)
	case <-time.After(60 * time.Second):
		sb.stop()
		return nil, fmt.Errorf("standby %d did not answer within 60s", i)
	}
}

// stop interrupts the standby and waits for it to exit.
func (sb *standbyProc) stop() {
	sb.cmd.Process.Signal(os.Interrupt)
	select {
	case <-sb.done:
	case <-time.After(30 * time.Second):
		sb.cmd.Process.Kill()
		<-sb.done
	}
}

// startInProcess runs a server in this process on a temporary data
// directory.
func startInProcess(work string) (*serverProc, error) {
	cfg := server.DefaultConfig(filepath.Join(work, "data"))
	cfg.AdminToken = newToken()
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		if err := srv.Serve(ctx, lis); err != nil {
			fmt.Fprintln(os.Stderr, "server:", err)
		}
		close(done)
	}()
	return &serverProc{
		addr:  lis.Addr().String(),
		token: cfg.AdminToken,
		cpu:   func() (time.Duration, bool) { return 0, false },
		exited: func() bool {
			select {
			case <-done:
				return true
			default:
				return false
			}
		},
		stop: func() {
			cancel()
			<-done
		},
	}, nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
