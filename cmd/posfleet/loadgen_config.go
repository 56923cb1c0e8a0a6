package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/posfleet/posfleet/client"
	"github.com/posfleet/posfleet/loadgen"
)

// loadgenConfig holds every setting of "posfleet loadgen". Each field is the
// flag of the name in its comment, and so also that flag's POSFLEET_*
// environment twin; defaultLoadgenConfig gives the defaults.
type loadgenConfig struct {
	// Target is the server address, host:port, or the comma-separated
	// addresses of several nodes of one cluster (--target, default
	// 127.0.0.1:7400). Connection i starts on node i mod n and moves to
	// another node when its node is gone (client.WithTargetIndex); the
	// report counts calls and moves per node.
	Target string
	// AdminTokenFile holds an admin token for provisioning the fleet
	// (--admin-token-file, default ./posfleet-data/admin.token). Read only
	// when AdminToken is empty.
	AdminTokenFile string
	// AdminToken is the admin token itself, from POSFLEET_ADMIN_TOKEN; an
	// explicit --admin-token-file wins over it. Not a flag: a credential on
	// the command line would show in the process list.
	AdminToken string
	// Driver is what to drive: "fleet" (simulated terminals) or "health"
	// (grpc.health.v1 Check, the machine's ceiling) (--driver, default
	// fleet).
	Driver string
	// Profile is a built-in rate profile name or a .json/.yaml file of
	// stages (--profile, default steady).
	Profile string
	// Duration is the measured duration of a built-in profile (--duration,
	// default 1m).
	Duration time.Duration
	// Warmup precedes a built-in profile and is excluded from results
	// (--warmup, default 10s; 0 for none).
	Warmup time.Duration
	// Rate is the mean arrival rate per second, transactions or health
	// checks; the base of "2x" rates in profile files (--rate, default 50).
	Rate float64
	// Arrivals is the arrival process, poisson or uniform (--arrivals,
	// default poisson).
	Arrivals string
	// Terminals is the number of simulated terminals, or of concurrent
	// workers with the health driver (--terminals, default 100). Positive.
	Terminals int
	// Connections is the number of gRPC connections the terminals share
	// (--connections, default 0: one per terminal; more than Terminals
	// counts as Terminals).
	Connections int
	// Merchants to create (--merchants, default 0: one per 100 terminals).
	Merchants int
	// StoresPerMerchant (--stores-per-merchant, default 2).
	StoresPerMerchant int
	// Mix is the transaction mix weights: approve, decline, reverse, refund
	// (--mix, default loadgen.DefaultMix).
	Mix string
	// DeclineTokens are the comma-separated issuer-simulator test-card
	// tokens that decline (--decline-tokens).
	DeclineTokens string
	// Amounts is the sale amount range "LO-HI" in minor units (--amounts,
	// default 100-5000).
	Amounts string
	// HeartbeatInterval of each terminal (--heartbeat-interval, default 0:
	// as the server hands out).
	HeartbeatInterval time.Duration
	// NoWatch leaves out the WatchConfig stream per terminal (--no-watch).
	NoWatch bool
	// RolloutGate publishes a declining limit in stages with a payment gate
	// and reports how soon the gate stops it (--rollout-gate).
	RolloutGate bool
	// RolloutGateSoak is the soak time of that publish
	// (--rollout-gate-soak, default 30s).
	RolloutGateSoak time.Duration
	// ReportDir receives report.json, report.html, summary.txt and
	// latency.hlog (--report, default loadgen-report).
	ReportDir string
	// SLOs are service-level checks such as "authorize.p99<=20ms" (--slo,
	// repeatable); a miss exits with status 3.
	SLOs listFlag
	// Seed of arrivals and the mix (--seed, default 0: random).
	Seed uint64
	// QueueDepth is how many arrivals may wait per terminal (--queue-depth,
	// default 0: 64; a shared queue of 65536 with the health driver).
	QueueDepth int
	// Drain is how long work may run past the end of the profile before it
	// is cancelled (--drain, default 30s).
	Drain time.Duration
	// CallTimeout is the deadline of each call, of each attempt for payment
	// calls (--call-timeout, default 10s).
	CallTimeout time.Duration
	// Attempts is how often a payment call is tried, as the client SDK
	// retries it (--attempts, default 4; 1: no retries).
	Attempts int
	// SetupConcurrency is the number of concurrent calls while
	// provisioning, registering and closing batches (--setup-concurrency,
	// default 32).
	SetupConcurrency int
	// RunID prefixes every identifier the run creates, 1-8 letters or
	// digits (--run-id, default random).
	RunID string
	// Quiet turns off the live progress line (--quiet).
	Quiet bool
	// Cleanup retires the run's terminals and archives its merchants and
	// stores afterwards, after an interrupted run too (--cleanup).
	Cleanup bool
	// TLSCA is a CA certificate (PEM) to verify the server; it enables TLS
	// (--tls-ca).
	TLSCA string
	// TLS connects with TLS using the system roots (--tls).
	TLS bool
	// Insecure allows plaintext to a non-loopback target (--insecure).
	Insecure bool
	// LogLevel is debug, info, warn or error (--log-level, default info).
	LogLevel string
}

// defaultLoadgenConfig returns the settings of a loadgen run with no flags.
func defaultLoadgenConfig() loadgenConfig {
	return loadgenConfig{
		Target:            "127.0.0.1:7400",
		AdminTokenFile:    "./posfleet-data/admin.token",
		Driver:            "fleet",
		Profile:           loadgen.ProfileSteady,
		Duration:          time.Minute,
		Warmup:            10 * time.Second,
		Rate:              50,
		Arrivals:          "poisson",
		Terminals:         100,
		StoresPerMerchant: 2,
		Mix:               loadgen.DefaultMix().String(),
		DeclineTokens:     strings.Join(loadgen.DefaultDeclineTokens(), ","),
		Amounts:           "100-5000",
		RolloutGateSoak:   30 * time.Second,
		ReportDir:         "loadgen-report",
		Drain:             30 * time.Second,
		CallTimeout:       10 * time.Second,
		Attempts:          4,
		SetupConcurrency:  32,
		LogLevel:          "info",
	}
}

// bind registers a flag for every setting, with c's values as defaults.
func (c *loadgenConfig) bind(fs *flag.FlagSet) {
	fs.StringVar(&c.Target, "target", c.Target, "server address host:port, or several nodes of one cluster separated by commas (terminals spread over them and move when a node is gone)")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", c.AdminTokenFile, "file holding an admin token (or set POSFLEET_ADMIN_TOKEN)")
	fs.StringVar(&c.Driver, "driver", c.Driver, "what to drive: fleet (simulated terminals) or health (grpc.health.v1 Check, the machine's ceiling)")
	fs.StringVar(&c.Profile, "profile", c.Profile, "rate profile: "+strings.Join(loadgen.BuiltinProfiles(), ", ")+", or a .json/.yaml file of stages")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "measured duration of a built-in profile")
	fs.DurationVar(&c.Warmup, "warmup", c.Warmup, "warm-up before a built-in profile, excluded from results (0 for none)")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "mean arrival rate per second (transactions, or health checks); base of \"2x\" rates in profile files")
	fs.StringVar(&c.Arrivals, "arrivals", c.Arrivals, "arrival process: poisson or uniform")
	fs.IntVar(&c.Terminals, "terminals", c.Terminals, "simulated terminals (with --driver health: concurrent workers)")
	fs.IntVar(&c.Connections, "connections", c.Connections, "gRPC connections shared by the terminals (0: one per terminal)")
	fs.IntVar(&c.Merchants, "merchants", c.Merchants, "merchants to create (0: one per 100 terminals)")
	fs.IntVar(&c.StoresPerMerchant, "stores-per-merchant", c.StoresPerMerchant, "stores per merchant")
	fs.StringVar(&c.Mix, "mix", c.Mix, "transaction mix weights: approve, decline (test cards), reverse, refund")
	fs.StringVar(&c.DeclineTokens, "decline-tokens", c.DeclineTokens, "comma-separated issuer-simulator test-card tokens for declines")
	fs.StringVar(&c.Amounts, "amounts", c.Amounts, "sale amount range in minor units")
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat-interval", c.HeartbeatInterval, "heartbeat interval (0: as the server hands out)")
	fs.BoolVar(&c.NoWatch, "no-watch", c.NoWatch, "do not open a WatchConfig stream per terminal")
	fs.BoolVar(&c.RolloutGate, "rollout-gate", c.RolloutGate, "config-rollout publishes a declining limit in stages with a payment gate and reports how soon the gate stops it")
	fs.DurationVar(&c.RolloutGateSoak, "rollout-gate-soak", c.RolloutGateSoak, "soak time of the --rollout-gate publish")
	fs.StringVar(&c.ReportDir, "report", c.ReportDir, "directory for report.json, report.html, summary.txt and latency.hlog")
	fs.Var(&c.SLOs, "slo", "service-level check such as 'authorize.p99<=20ms' (repeatable; metrics p50 p90 p99 p999 max error_rate achieved_rate); a miss exits with status 3")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed for arrivals and the mix (0: random)")
	fs.IntVar(&c.QueueDepth, "queue-depth", c.QueueDepth, "arrivals that may wait per terminal (0: 64; shared queue with --driver health: 65536)")
	fs.DurationVar(&c.Drain, "drain", c.Drain, "how long work may run past the end of the profile before it is cancelled")
	fs.DurationVar(&c.CallTimeout, "call-timeout", c.CallTimeout, "deadline of each call (of each attempt, for payment calls)")
	fs.IntVar(&c.Attempts, "attempts", c.Attempts, "tries of a payment call, as the client SDK retries it (1: no retries, every failure counted as it happens)")
	fs.IntVar(&c.SetupConcurrency, "setup-concurrency", c.SetupConcurrency, "concurrent calls while provisioning, registering and closing batches")
	fs.StringVar(&c.RunID, "run-id", c.RunID, "prefix of every identifier the run creates, 1-8 letters or digits (default random)")
	fs.BoolVar(&c.Quiet, "quiet", c.Quiet, "no live progress line")
	fs.BoolVar(&c.Cleanup, "cleanup", c.Cleanup, "after the run (also an interrupted one), retire its terminals and archive its merchants and stores")
	fs.StringVar(&c.TLSCA, "tls-ca", c.TLSCA, "CA certificate (PEM) to verify the server; enables TLS")
	fs.BoolVar(&c.TLS, "tls", c.TLS, "connect with TLS using the system roots")
	fs.BoolVar(&c.Insecure, "insecure", c.Insecure, "allow plaintext to a non-loopback target")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error")
}

// Validate checks every setting without touching the network or the disk
// (a profile file is read). The fleet driver's own settings are checked
// only for that driver.
func (c loadgenConfig) Validate() error {
	if _, err := newLogger(io.Discard, c.LogLevel, "text"); err != nil {
		return err
	}
	if _, err := c.runConfig(); err != nil {
		return err
	}
	if _, err := loadgen.ParseSLOs(c.SLOs); err != nil {
		return err
	}
	if c.Terminals <= 0 {
		return errors.New("--terminals must be positive")
	}
	targets, err := c.targets()
	if err != nil {
		return err
	}
	if c.TLSCA == "" && !c.TLS && !c.Insecure {
		for _, t := range targets {
			loop, err := isLoopbackTarget(t)
			if err != nil {
				return err
			}
			if !loop {
				return fmt.Errorf("refusing plaintext to non-loopback target %s: give --tls or --tls-ca, or --insecure to accept the risk", t)
			}
		}
	}
	switch c.Driver {
	case "health":
		return nil
	case "fleet":
		_, err := c.fleetConfig()
		return err
	default:
		return fmt.Errorf("--driver %q: want fleet or health", c.Driver)
	}
}

// targets are the nodes of Target.
func (c loadgenConfig) targets() ([]string, error) {
	targets, err := client.SplitTargets(c.Target)
	if err != nil {
		return nil, fmt.Errorf("--target: %w", err)
	}
	return targets, nil
}

// connections is the number of gRPC connections to dial: Connections,
// where 0 or more than Terminals means one per terminal.
func (c loadgenConfig) connections() int {
	if c.Connections <= 0 || c.Connections > c.Terminals {
		return c.Terminals
	}
	return c.Connections
}

// transport is the client option for TLS (with the CA of TLSCA, or the
// system roots) or plaintext.
func (c loadgenConfig) transport() (client.Option, error) {
	switch {
	case c.TLSCA != "":
		pem, err := os.ReadFile(c.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca: no certificate in %s", c.TLSCA)
		}
		return client.WithTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}), nil
	case c.TLS:
		return client.WithTLS(nil), nil
	default:
		return client.WithInsecure(), nil
	}
}

// runConfig is the loadgen.Config of the run, without its interval log,
// progress writer and driver-specific parts.
func (c loadgenConfig) runConfig() (loadgen.Config, error) {
	proc, err := loadgen.ParseArrivalProcess(c.Arrivals)
	if err != nil {
		return loadgen.Config{}, err
	}
	prof, err := loadgen.ResolveProfile(c.Profile, c.Rate, c.Duration, c.Warmup)
	if err != nil {
		return loadgen.Config{}, err
	}
	return loadgen.Config{
		Profile:    prof,
		Arrivals:   proc,
		Seed:       c.Seed,
		Users:      c.Terminals,
		QueueDepth: c.QueueDepth,
		Drain:      c.Drain,
		Info: map[string]string{
			"target":      c.Target,
			"driver":      c.Driver,
			"connections": fmt.Sprint(c.connections()),
			"rate":        fmt.Sprint(c.Rate),
		},
	}, nil
}

// fleetConfig is the simulated fleet of the fleet driver.
func (c loadgenConfig) fleetConfig() (loadgen.FleetConfig, error) {
	mix, err := loadgen.ParseMix(c.Mix)
	if err != nil {
		return loadgen.FleetConfig{}, err
	}
	lo, hi, err := parseAmounts(c.Amounts)
	if err != nil {
		return loadgen.FleetConfig{}, err
	}
	var tokens listFlag
	tokens.Set(c.DeclineTokens)
	return loadgen.FleetConfig{
		Terminals:         c.Terminals,
		Merchants:         c.Merchants,
		StoresPerMerchant: c.StoresPerMerchant,
		Mix:               mix,
		DeclineTokens:     tokens,
		MinAmount:         lo,
		MaxAmount:         hi,
		HeartbeatInterval: c.HeartbeatInterval,
		NoWatch:           c.NoWatch,
		RolloutGate:       c.RolloutGate,
		RolloutGateSoak:   c.RolloutGateSoak,
		SetupConcurrency:  c.SetupConcurrency,
		CallTimeout:       c.CallTimeout,
		Attempts:          c.Attempts,
		RunID:             c.RunID,
		Seed:              c.Seed,
	}, nil
}

// adminToken is AdminToken, or else the content of AdminTokenFile.
func (c loadgenConfig) adminToken() (string, error) {
	if c.AdminToken != "" {
		return c.AdminToken, nil
	}
	b, err := os.ReadFile(c.AdminTokenFile)
	if err != nil {
		return "", fmt.Errorf("admin token: %w (give --admin-token-file or POSFLEET_ADMIN_TOKEN)", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// parseAmounts parses "LO-HI" minor units.
func parseAmounts(s string) (int64, int64, error) {
	var lo, hi int64
	if _, err := fmt.Sscanf(s, "%d-%d", &lo, &hi); err != nil || lo <= 0 || hi < lo {
		return 0, 0, fmt.Errorf("--amounts %q: want LO-HI in minor units, e.g. 100-5000", s)
	}
	return lo, hi, nil
}
