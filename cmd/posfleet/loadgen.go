package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/posfleet/posfleet/client"
	"github.com/posfleet/posfleet/loadgen"
)

// sloFailed is returned when a --slo check fails; the exit status is 3.
type sloFailed struct{ failed []string }

func (e sloFailed) Error() string {
	return "SLO missed: " + strings.Join(e.failed, ", ")
}

// ExitCode makes a missed SLO exit with status 3.
func (sloFailed) ExitCode() int { return 3 }

// interrupted ends a run cut short by SIGINT or SIGTERM: exit status 130,
// as a shell reports a command ended by Ctrl-C, and no error text (the
// partial report says what happened).
type interrupted struct{}

func (interrupted) Error() string { return "interrupted" }

// ExitCode is 128 + SIGINT.
func (interrupted) ExitCode() int { return 130 }

// Unwrap makes the interruption count as already reported, so that nothing
// more is printed.
func (interrupted) Unwrap() error { return errUsage }

// isTerminal reports whether w is a terminal, where the progress line is
// rewritten in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// listFlag is a repeatable flag; each value may also hold several entries
// separated by commas or semicolons (as in its environment twin).
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for part := range strings.FieldsFuncSeq(v, func(r rune) bool { return r == ',' || r == ';' }) {
		if p := strings.TrimSpace(part); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func runLoadgen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("loadgen", stderr)
	target := fs.String("target", "127.0.0.1:7400", "server address")
	tokenFile := fs.String("admin-token-file", "./posfleet-data/admin.token", "file holding an admin token (or set POSFLEET_ADMIN_TOKEN)")
	driver := fs.String("driver", "fleet", "what to drive: fleet (simulated terminals) or health (grpc.health.v1 Check, the machine's ceiling)")
	profile := fs.String("profile", loadgen.ProfileSteady, "rate profile: "+strings.Join(loadgen.BuiltinProfiles(), ", ")+", or a .json/.yaml file of stages")
	duration := fs.Duration("duration", time.Minute, "measured duration of a built-in profile")
	warmup := fs.Duration("warmup", 10*time.Second, "warm-up before a built-in profile, excluded from results (0 for none)")
	rate := fs.Float64("rate", 50, "mean arrival rate per second (transactions, or health checks); base of \"2x\" rates in profile files")
	arrivals := fs.String("arrivals", "poisson", "arrival process: poisson or uniform")
	terminals := fs.Int("terminals", 100, "simulated terminals (with --driver health: concurrent workers)")
	connections := fs.Int("connections", 0, "gRPC connections shared by the terminals (0: one per terminal)")
	merchants := fs.Int("merchants", 0, "merchants to create (0: one per 100 terminals)")
	stores := fs.Int("stores-per-merchant", 2, "stores per merchant")
	mixFlag := fs.String("mix", loadgen.DefaultMix().String(), "transaction mix weights: approve, decline (test cards), reverse, refund")
	declineTokens := fs.String("decline-tokens", strings.Join(loadgen.DefaultDeclineTokens(), ","), "comma-separated issuer-simulator test-card tokens for declines")
	amounts := fs.String("amounts", "100-5000", "sale amount range in minor units")
	heartbeat := fs.Duration("heartbeat-interval", 0, "heartbeat interval (0: as the server hands out)")
	noWatch := fs.Bool("no-watch", false, "do not open a WatchConfig stream per terminal")
	rolloutGate := fs.Bool("rollout-gate", false, "config-rollout publishes a declining limit in stages with a payment gate and reports how soon the gate stops it")
	gateSoak := fs.Duration("rollout-gate-soak", 30*time.Second, "soak time of the --rollout-gate publish")
	reportDir := fs.String("report", "loadgen-report", "directory for report.json, report.html, summary.txt and latency.hlog")
	var slos listFlag
	fs.Var(&slos, "slo", "service-level check such as 'authorize.p99<=20ms' (repeatable; metrics p50 p90 p99 p999 max error_rate achieved_rate); a miss exits with status 3")
	seed := fs.Uint64("seed", 0, "seed for arrivals and the mix (0: random)")
	queueDepth := fs.Int("queue-depth", 0, "arrivals that may wait per terminal (0: 64; shared queue with --driver health: 65536)")
	drain := fs.Duration("drain", 30*time.Second, "how long work may run past the end of the profile before it is cancelled")
	callTimeout := fs.Duration("call-timeout", 10*time.Second, "deadline of each call (of each attempt, for payment calls)")
	attempts := fs.Int("attempts", 4, "tries of a payment call, as the client SDK retries it (1: no retries, every failure counted as it happens)")
	setupConc := fs.Int("setup-concurrency", 32, "concurrent calls while provisioning, registering and closing batches")
	runID := fs.String("run-id", "", "prefix of every identifier the run creates, 1-8 letters or digits (default random)")
	quiet := fs.Bool("quiet", false, "no live progress line")
	cleanup := fs.Bool("cleanup", false, "after the run (also an interrupted one), retire its terminals and archive its merchants and stores")
	tlsCA := fs.String("tls-ca", "", "CA certificate (PEM) to verify the server; enables TLS")
	useTLS := fs.Bool("tls", false, "connect with TLS using the system roots")
	insecure := fs.Bool("insecure", false, "allow plaintext to a non-loopback target")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	logger, err := newLogger(stderr, *logLevel, "text")
	if err != nil {
		return err
	}

	proc, err := loadgen.ParseArrivalProcess(*arrivals)
	if err != nil {
		return err
	}
	prof, err := loadgen.ResolveProfile(*profile, *rate, *duration, *warmup)
	if err != nil {
		return err
	}
	checks, err := loadgen.ParseSLOs(slos)
	if err != nil {
		return err
	}
	if *terminals <= 0 {
		return errors.New("--terminals must be positive")
	}
	nconn := *connections
	if nconn <= 0 || nconn > *terminals {
		nconn = *terminals
	}

	// Transport: TLS, or plaintext only to loopback unless --insecure.
	var transport client.Option
	switch {
	case *tlsCA != "":
		pem, err := os.ReadFile(*tlsCA)
		if err != nil {
			return fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--tls-ca: no certificate in %s", *tlsCA)
		}
		transport = client.WithTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	case *useTLS:
		transport = client.WithTLS(nil)
	default:
		if !*insecure {
			loop, err := isLoopbackTarget(*target)
			if err != nil {
				return err
			}
			if !loop {
				return fmt.Errorf("refusing plaintext to non-loopback target %s: give --tls or --tls-ca, or --insecure to accept the risk", *target)
			}
		}
		transport = client.WithInsecure()
	}

	var clients []*client.Client
	var conns []grpc.ClientConnInterface
	for range nconn {
		c, err := client.Dial(*target, transport)
		if err != nil {
			return err
		}
		defer c.Close()
		clients = append(clients, c)
		conns = append(conns, c.Conn())
	}

	if err := os.MkdirAll(*reportDir, 0o755); err != nil {
		return err
	}
	hlog, err := os.Create(filepath.Join(*reportDir, loadgen.ReportHlog))
	if err != nil {
		return err
	}
	defer hlog.Close()

	cfg := loadgen.Config{
		Profile:     prof,
		Arrivals:    proc,
		Seed:        *seed,
		Users:       *terminals,
		QueueDepth:  *queueDepth,
		Drain:       *drain,
		IntervalLog: hlog,
		Info: map[string]string{
			"target":      *target,
			"driver":      *driver,
			"connections": fmt.Sprint(nconn),
			"rate":        fmt.Sprint(*rate),
		},
	}
	if !*quiet {
		cfg.Progress = stderr
		cfg.ProgressTTY = isTerminal(stderr)
	}

	var run *loadgen.Run
	var runErr, cleanupErr error
	switch *driver {
	case "health":
		exec, err := loadgen.NewHealthExecutor(conns, "", *callTimeout)
		if err != nil {
			return err
		}
		cfg.Assignment = loadgen.Shared
		cfg.Info["workers"] = fmt.Sprint(*terminals)
		if run, err = loadgen.NewRun(cfg, logger); err != nil {
			return err
		}
		runErr = run.Drive(ctx, exec)
	case "fleet":
		token := strings.TrimSpace(os.Getenv("POSFLEET_ADMIN_TOKEN"))
		if token == "" || isFlagSet(fs, "admin-token-file") {
			b, err := os.ReadFile(*tokenFile)
			if err != nil {
				return fmt.Errorf("admin token: %w (give --admin-token-file or POSFLEET_ADMIN_TOKEN)", err)
			}
			token = strings.TrimSpace(string(b))
		}
		admin, err := client.Dial(*target, transport, client.WithBearer(token), client.WithDefaultTimeout(*callTimeout))
		if err != nil {
			return err
		}
		defer admin.Close()
		mix, err := loadgen.ParseMix(*mixFlag)
		if err != nil {
			return err
		}
		lo, hi, err := parseAmounts(*amounts)
		if err != nil {
			return err
		}
		var tokens listFlag
		tokens.Set(*declineTokens)
		fleet, err := loadgen.NewFleet(loadgen.FleetConfig{
			Terminals:         *terminals,
			Merchants:         *merchants,
			StoresPerMerchant: *stores,
			Mix:               mix,
			DeclineTokens:     tokens,
			MinAmount:         lo,
			MaxAmount:         hi,
			HeartbeatInterval: *heartbeat,
			NoWatch:           *noWatch,
			RolloutGate:       *rolloutGate,
			RolloutGateSoak:   *gateSoak,
			SetupConcurrency:  *setupConc,
			CallTimeout:       *callTimeout,
			Attempts:          *attempts,
			RunID:             *runID,
			Seed:              *seed,
		}, admin, clients, logger)
		if err != nil {
			return err
		}
		for k, v := range fleet.Info() {
			cfg.Info[k] = v
		}
		cfg.Info["attempts"] = fmt.Sprint(*attempts)
		cfg.OnEvent = fleet.OnEvent
		if run, err = loadgen.NewRun(cfg, logger); err != nil {
			return err
		}
		runErr = fleet.Run(ctx, run)
		if *cleanup {
			// Cleanup runs after Ctrl-C too, for a bounded time.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
			rep, err := fleet.Cleanup(cctx)
			cancel()
			cleanupErr = err
			logger.Info("cleaned up", "terminals_retired", rep.Terminals, "stores_archived", rep.Stores, "merchants_archived", rep.Merchants)
		}
	default:
		return fmt.Errorf("--driver %q: want fleet or health", *driver)
	}

	res := run.Finish()
	if err := run.IntervalLogErr(); err != nil {
		logger.Warn("interval log incomplete", "err", err)
	}
	pass := loadgen.EvaluateSLOs(res, checks)
	if err := loadgen.WriteReport(*reportDir, res); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := loadgen.WriteTable(stdout, res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nreport: %s\n", *reportDir)
	if ctx.Err() != nil {
		if cleanupErr != nil {
			logger.Warn("cleanup incomplete", "err", cleanupErr)
		}
		return interrupted{}
	}
	if cleanupErr != nil {
		return cleanupErr
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	if !pass {
		var failed []string
		for _, s := range res.SLOs {
			if !s.Pass {
				failed = append(failed, s.Expr)
			}
		}
		return sloFailed{failed}
	}
	return runErr
}

// parseAmounts parses "LO-HI" minor units.
func parseAmounts(s string) (int64, int64, error) {
	var lo, hi int64
	if _, err := fmt.Sscanf(s, "%d-%d", &lo, &hi); err != nil || lo <= 0 || hi < lo {
		return 0, 0, fmt.Errorf("--amounts %q: want LO-HI in minor units, e.g. 100-5000", s)
	}
	return lo, hi, nil
}

// isLoopbackTarget reports whether a "host:port" target is a loopback
// address (localhost counts).
func isLoopbackTarget(target string) (bool, error) {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return false, fmt.Errorf("--target %q: %w", target, err)
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}
