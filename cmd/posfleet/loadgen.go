package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
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

// runLoadgen is "posfleet loadgen": settings from flags and environment
// into one loadgenConfig, checked before anything is dialed; then
// connections, the report directory, the driven run and the report.
func runLoadgen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseLoadgenConfig(args, stderr)
	if err != nil {
		return err
	}
	logger, err := newLogger(stderr, cfg.LogLevel, "text")
	if err != nil {
		return err
	}
	transport, err := cfg.transport()
	if err != nil {
		return err
	}
	targets, err := cfg.targets()
	if err != nil {
		return err
	}
	var cluster *loadgen.Cluster
	if len(targets) > 1 {
		cluster = loadgen.NewCluster(targets, cfg.connections())
	}
	clients, err := dialClients(cfg.Target, transport, cfg.connections(), cluster)
	defer closeClients(clients)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.ReportDir, 0o755); err != nil {
		return err
	}
	hlog, err := os.Create(filepath.Join(cfg.ReportDir, loadgen.ReportHlog))
	if err != nil {
		return err
	}
	defer hlog.Close()

	runCfg, err := cfg.runConfig()
	if err != nil {
		return err
	}
	runCfg.IntervalLog = hlog
	if !cfg.Quiet {
		runCfg.Progress = stderr
		runCfg.ProgressTTY = isTerminal(stderr)
	}
	var d driven
	if cfg.Driver == "health" {
		d, err = driveHealth(ctx, cfg, runCfg, clients, logger)
	} else {
		d, err = driveFleet(ctx, cfg, runCfg, transport, clients, logger)
	}
	if err != nil {
		return err
	}
	if cluster != nil {
		d.run.SetCluster(cluster)
	}
	return finishLoadgen(ctx, cfg, d, stdout, logger)
}

// parseLoadgenConfig binds loadgen's flags to a loadgenConfig, parses args
// (flags win over their POSFLEET_* twins) and validates the result.
func parseLoadgenConfig(args []string, stderr io.Writer) (loadgenConfig, error) {
	cfg := defaultLoadgenConfig()
	fs := newFlagSet("loadgen", stderr)
	cfg.bind(fs)
	if err := parseFlags(fs, args); err != nil {
		return cfg, err
	}
	if token := strings.TrimSpace(os.Getenv("POSFLEET_ADMIN_TOKEN")); token != "" && !isFlagSet(fs, "admin-token-file") {
		cfg.AdminToken = token
	}
	return cfg, cfg.Validate()
}

// driven is a run that was driven to its end (or interrupted): the run to
// finish, and what went wrong while driving it and cleaning up after it.
type driven struct {
	run                *loadgen.Run
	runErr, cleanupErr error
}

// dialClients dials n connections to target; the clients dialed so far are
// returned with an error too, for the caller to close. With several nodes
// in target, connection i starts on node i mod n and reports its calls to
// cluster.
func dialClients(target string, transport client.Option, n int, cluster *loadgen.Cluster) ([]*client.Client, error) {
	var clients []*client.Client
	for i := range n {
		opts := []client.Option{transport}
		if cluster != nil {
			opts = append(opts, client.WithTargetIndex(i), client.WithNodeObserver(cluster.Observer(i)))
		}
		c, err := client.Dial(target, opts...)
		if err != nil {
			return clients, err
		}
		clients = append(clients, c)
	}
	return clients, nil
}

// closeClients closes every client.
func closeClients(clients []*client.Client) {
	for _, c := range clients {
		c.Close()
	}
}

// driveHealth drives grpc.health.v1 Check calls from cfg.Terminals workers
// sharing one queue.
func driveHealth(ctx context.Context, cfg loadgenConfig, runCfg loadgen.Config, clients []*client.Client, logger *slog.Logger) (driven, error) {
	conns := make([]grpc.ClientConnInterface, len(clients))
	for i, c := range clients {
		conns[i] = c.Conn()
	}
	exec, err := loadgen.NewHealthExecutor(conns, "", cfg.CallTimeout)
	if err != nil {
		return driven{}, err
	}
	runCfg.Assignment = loadgen.Shared
	runCfg.Info["workers"] = fmt.Sprint(cfg.Terminals)
	run, err := loadgen.NewRun(runCfg, logger)
	if err != nil {
		return driven{}, err
	}
	return driven{run: run, runErr: run.Drive(ctx, exec)}, nil
}

// driveFleet provisions a simulated fleet through an admin connection,
// drives it, and cleans up after it when cfg.Cleanup is set.
func driveFleet(ctx context.Context, cfg loadgenConfig, runCfg loadgen.Config, transport client.Option, clients []*client.Client, logger *slog.Logger) (driven, error) {
	token, err := cfg.adminToken()
	if err != nil {
		return driven{}, err
	}
	admin, err := client.Dial(cfg.Target, transport, client.WithBearer(token), client.WithDefaultTimeout(cfg.CallTimeout))
	if err != nil {
		return driven{}, err
	}
	defer admin.Close()
	fleetCfg, err := cfg.fleetConfig()
	if err != nil {
		return driven{}, err
	}
	fleet, err := loadgen.NewFleet(fleetCfg, admin, clients, logger)
	if err != nil {
		return driven{}, err
	}
	maps.Copy(runCfg.Info, fleet.Info())
	runCfg.Info["attempts"] = fmt.Sprint(cfg.Attempts)
	runCfg.OnEvent = fleet.OnEvent
	run, err := loadgen.NewRun(runCfg, logger)
	if err != nil {
		return driven{}, err
	}
	d := driven{run: run, runErr: fleet.Run(ctx, run)}
	if cfg.Cleanup {
		// Cleanup runs after Ctrl-C too, for a bounded time.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		rep, err := fleet.Cleanup(cctx)
		cancel()
		d.cleanupErr = err
		logger.Info("cleaned up", "terminals_retired", rep.Terminals, "stores_archived", rep.Stores, "merchants_archived", rep.Merchants)
	}
	return d, nil
}

// finishLoadgen writes the report and the summary table, then turns the
// run's end into the command's result: interrupted (130), a cleanup or run
// error, a missed SLO (3), or success.
func finishLoadgen(ctx context.Context, cfg loadgenConfig, d driven, stdout io.Writer, logger *slog.Logger) error {
	res := d.run.Finish()
	if err := d.run.IntervalLogErr(); err != nil {
		logger.Warn("interval log incomplete", "err", err)
	}
	checks, err := loadgen.ParseSLOs(cfg.SLOs)
	if err != nil {
		return err
	}
	pass := loadgen.EvaluateSLOs(res, checks)
	if err := loadgen.WriteReport(cfg.ReportDir, res); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := loadgen.WriteTable(stdout, res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nreport: %s\n", cfg.ReportDir)
	if ctx.Err() != nil {
		if d.cleanupErr != nil {
			logger.Warn("cleanup incomplete", "err", d.cleanupErr)
		}
		return interrupted{}
	}
	if d.cleanupErr != nil {
		return d.cleanupErr
	}
	if d.runErr != nil && !errors.Is(d.runErr, context.Canceled) {
		return d.runErr
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
	return d.runErr
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
