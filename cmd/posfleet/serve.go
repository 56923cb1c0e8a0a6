package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/posfleet/posfleet/internal/buildinfo"
	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/server/pan"
	"github.com/posfleet/posfleet/server/webhook"
)

// serveNotInFile are serve's flags that a config file may not set: which
// file to read, and what to do instead of serving.
var serveNotInFile = map[string]bool{"config": true, "print-config": true}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	// Settings: one line each. Every one is also a POSFLEET_* environment
	// variable and a key of the --config file.
	listen := fs.String("listen", "127.0.0.1:7400", "gRPC listen address")
	dataDir := fs.String("data-dir", "./posfleet-data", "data directory")
	storeKind := fs.String("store", server.StoreBadger, "storage backend: badger (the database in --data-dir) or postgres (in --database-url)")
	databaseURL := fs.String("database-url", "", "PostgreSQL connection string for --store postgres; a host other than loopback or a unix socket needs sslmode=require, verify-ca or verify-full")
	takeOwnership := fs.Bool("take-ownership", false, "take over a data directory owned by another user, making all its files the running user's (refused otherwise)")
	verifyAllTables := fs.Bool("verify-all-tables", false, "at start, read every table of the database and verify all its checksums, not only the tables not verified before (see docs/storage-faults.md)")
	tokenFile := fs.String("admin-token-file", "", "file holding the bootstrap admin token (default: env POSFLEET_ADMIN_TOKEN, else generated into DATA_DIR/admin.token)")
	tlsCert := fs.String("tls-cert", "", "TLS certificate file (PEM)")
	tlsKey := fs.String("tls-key", "", "TLS private key file (PEM)")
	insecure := fs.Bool("insecure", false, "allow plaintext on a non-loopback address")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	metricsListen := fs.String("metrics-listen", "", "address for the Prometheus /metrics endpoint and the /healthz and /readyz probes (off when empty)")
	consoleListen := fs.String("console-listen", "127.0.0.1:7480", "address of the operator web console (off or empty: no console); a non-loopback address needs --tls-cert/--tls-key or --insecure")
	pprofOn := fs.Bool("pprof", false, "also serve Go's /debug/pprof/ profiles on --metrics-listen, which must then be a loopback address")
	grace := fs.Duration("shutdown-grace", 15*time.Second, "how long shutdown waits for in-flight calls")
	maxRecv := fs.Int("max-recv-msg-size", 256<<10, "largest request message in bytes")
	// Limits against hostile or buggy clients (defaults from server.DefaultConfig).
	limitDefaults := server.DefaultConfig("")
	maxConns := fs.Int("max-connections", limitDefaults.MaxConnections, "most open client connections in all (0: no cap); keep below the file descriptor limit")
	maxConnsPerPeer := fs.Int("max-connections-per-peer", limitDefaults.MaxConnectionsPerPeer, "most open connections from one IPv4 address or IPv6 /64 (0: no cap; loopback counts only against --max-connections)")
	maxIdle := fs.Duration("max-connection-idle", limitDefaults.MaxConnectionIdle, "close connections without calls for this long")
	maxHeaders := fs.Uint("max-header-list-size", uint(limitDefaults.MaxHeaderListSize), "largest request header list (metadata) in bytes")
	quotaScale := fs.Float64("quota-scale", 1, "multiply every per-credential call quota by this factor (0: no quotas, only for measuring the server's ceiling)")
	var diskReserve byteSize
	fs.Var(&diskReserve, "disk-reserve", "free space of the data directory's filesystem below which writes are refused (DISK_LOW) until space returns, e.g. 256MiB or 1GB; raised to what the store needs to finish its own writes (0: that alone, 36 MiB plus the LSM tree's size)")
	auditRetention := fs.Duration("audit-retention", limitDefaults.AuditRetention, "how long audit events are kept; older ones are pruned hourly (0: keep for good; at least 24h)")
	auditExportDir := fs.String("audit-export-dir", "", "directory that receives audit events as JSON lines (audit-YYYY-MM.jsonl), synced, before they are pruned (empty: pruned events are gone)")
	faultRetention := fs.Duration("fault-retention", limitDefaults.FaultRetention, "how long terminal fault events are kept for the fleet report")
	hookDefaults := webhook.DefaultConfig()
	hookTimeout := fs.Duration("webhook-timeout", hookDefaults.RequestTimeout, "how long one webhook delivery attempt may take, from connecting to the end of the response")
	hookRetryFor := fs.Duration("webhook-retry-for", hookDefaults.RetryFor, "how long a webhook event is retried before its delivery is marked failed and the endpoint moves on")
	hookMaxBackoff := fs.Duration("webhook-max-backoff", hookDefaults.MaxBackoff, "longest wait between a webhook event's delivery attempts")
	hookRetention := fs.Duration("webhook-retention", hookDefaults.Retention, "how long finished webhook deliveries stay listed")
	hookMaxEndpoints := fs.Int("webhook-max-endpoints", hookDefaults.MaxEndpoints, "most webhook endpoints")
	// Where the settings come from, and what to do with them.
	configFile := fs.String("config", "", "YAML file of settings keyed by flag name; flags and environment win over it")
	printCfg := fs.Bool("print-config", false, "print the effective settings (secrets redacted) as a config file and exit")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fileSet := map[string]bool{}
	if *configFile != "" {
		var err error
		if fileSet, err = applyConfigFile(fs, *configFile, serveNotInFile); err != nil {
			return err
		}
	}

	// Check every setting before anything touches the disk or the network.
	cfg := server.DefaultConfig(*dataDir)
	cfg.TakeOwnership = *takeOwnership
	cfg.VerifyAllTables = *verifyAllTables
	if err := serveStore(&cfg, *storeKind, *databaseURL); err != nil {
		return err
	}
	cfg.ShutdownGrace = *grace
	cfg.MaxRecvMsgSize = *maxRecv
	cfg.MaxConnections, cfg.MaxConnectionsPerPeer, cfg.MaxConnectionIdle = *maxConns, *maxConnsPerPeer, *maxIdle
	if *maxHeaders > 1<<31 {
		return fmt.Errorf("--max-header-list-size %d too large", *maxHeaders)
	}
	cfg.MaxHeaderListSize = uint32(*maxHeaders)
	if *quotaScale < 0 {
		return fmt.Errorf("--quota-scale %g must not be negative", *quotaScale)
	}
	cfg.Quotas = cfg.Quotas.Scale(*quotaScale)
	cfg.DiskReserve = int64(diskReserve)
	cfg.AuditRetention, cfg.AuditExportDir, cfg.FaultRetention = *auditRetention, *auditExportDir, *faultRetention
	cfg.Webhooks.RequestTimeout, cfg.Webhooks.RetryFor, cfg.Webhooks.MaxBackoff = *hookTimeout, *hookRetryFor, *hookMaxBackoff
	cfg.Webhooks.Retention, cfg.Webhooks.MaxEndpoints = *hookRetention, *hookMaxEndpoints
	logger, err := newLogger(stderr, *logLevel, *logFormat)
	tokenSource := ""
	if err == nil {
		tokenSource, err = serveAdminToken(&cfg, *tokenFile)
	}
	if err == nil {
		err = validateServe(&cfg, *listen, *metricsListen, *pprofOn, *tlsCert, *tlsKey, *insecure)
	}
	if err == nil {
		err = validateConsole(*consoleListen, cfg.TLS != nil, *insecure)
	}
	if err == nil {
		err = cfg.Validate()
	}
	if *printCfg {
		if perr := printConfig(stdout, fs, fileSet, serveNotInFile, serveSecret); perr != nil {
			return perr
		}
		fmt.Fprintf(stdout, "# bootstrap admin token: %s\n", tokenSource)
		return err
	}
	if err != nil {
		return err
	}
	logger.Info("posfleet starting", "build", buildinfo.Read().String())

	// Bind the addresses before opening the data directory: a taken port
	// must not leave a new database and admin token behind.
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	defer lis.Close()
	var metricsLis net.Listener
	if *metricsListen != "" {
		if metricsLis, err = net.Listen("tcp", *metricsListen); err != nil {
			return fmt.Errorf("--metrics-listen: %w", err)
		}
		defer metricsLis.Close()
	}
	consoleLis, err := listenConsole(*consoleListen)
	if err != nil {
		return err
	}
	if consoleLis != nil {
		defer consoleLis.Close()
	}

	// On PostgreSQL, a node waits here as a standby while another serves
	// the database (serve_standby.go).
	phase := &standbyPhase{handoff: server.NewHandoff(lis)}
	defer phase.handoff.Close()
	defer phase.close()
	srv, err := phase.open(ctx, cfg, metricsLis, logger)
	if errors.Is(err, errStoppedAsStandby) {
		logger.Info("stopped cleanly, as a standby")
		return nil
	}
	if err != nil {
		return err
	}
	if p := srv.AdminTokenPath(); p != "" {
		logger.Info("bootstrap admin token", "file", p)
	}
	phase.ops.h.Store(&handlerBox{metricsMux(srv.OpsHandler(), *pprofOn)})
	phase.serveMetrics(metricsLis, logger)
	if consoleLis != nil {
		stop, err := startConsole(srv, consoleLis, cfg.TLS, logger)
		if err != nil {
			srv.Close()
			return err
		}
		defer stop()
	}
	if err := srv.Serve(ctx, phase.handoff.Listener()); err != nil {
		return err
	}
	logger.Info("stopped cleanly")
	return nil
}

// byteSize is a flag value in bytes, given as a number with an optional
// unit: 512, 64MiB, 1.5GB (SI and IEC units, case-insensitive).
type byteSize int64

func (b *byteSize) String() string { return humanize.IBytes(uint64(*b)) }

func (b *byteSize) Set(s string) error {
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return fmt.Errorf("not a size in bytes (e.g. 64MiB): %q", s)
	}
	if n > math.MaxInt64 {
		return fmt.Errorf("size %q too large", s)
	}
	*b = byteSize(n)
	return nil
}

// serveAdminToken puts the bootstrap admin token into cfg: from file when
// set, else from POSFLEET_ADMIN_TOKEN. It returns where the token comes
// from, for --print-config.
func serveAdminToken(cfg *server.Config, file string) (string, error) {
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("admin token file: %w", err)
		}
		cfg.AdminToken = strings.TrimSpace(string(b))
		return "from --admin-token-file (redacted)", nil
	case os.Getenv("POSFLEET_ADMIN_TOKEN") != "":
		cfg.AdminToken = strings.TrimSpace(os.Getenv("POSFLEET_ADMIN_TOKEN"))
		return "from POSFLEET_ADMIN_TOKEN (redacted)", nil
	}
	return "generated into DATA_DIR/" + server.AdminTokenFile + " on first start", nil
}

// validateServe checks serve's addresses and TLS settings without binding
// or creating anything, and loads the TLS key pair into cfg.
func validateServe(cfg *server.Config, listen, metricsListen string, pprofOn bool, tlsCert, tlsKey string, insecure bool) error {
	if _, err := net.ResolveTCPAddr("tcp", listen); err != nil {
		return fmt.Errorf("--listen %q: %w", listen, err)
	}
	if metricsListen != "" {
		if _, err := net.ResolveTCPAddr("tcp", metricsListen); err != nil {
			return fmt.Errorf("--metrics-listen %q: %w", metricsListen, err)
		}
	}
	if pprofOn && metricsListen == "" {
		return errors.New("--pprof needs --metrics-listen")
	}
	if pprofOn {
		// Profiles show the process's command line, memory and goroutine
		// stacks, and the endpoint has no authentication.
		if loop, err := isLoopback(metricsListen); err != nil || !loop {
			return fmt.Errorf("refusing --pprof on non-loopback --metrics-listen %s: profiles are unauthenticated; serve them on 127.0.0.1 or ::1", metricsListen)
		}
	}
	if (tlsCert == "") != (tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(tlsCert, tlsKey)
		if err != nil {
			return fmt.Errorf("load TLS key pair: %w", err)
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cfg.TLS == nil && !insecure {
		loop, err := isLoopback(listen)
		if err != nil {
			return err
		}
		if !loop {
			return fmt.Errorf("refusing to serve plaintext on non-loopback address %s: give --tls-cert/--tls-key, or --insecure to accept the risk", listen)
		}
	}
	return nil
}

// metricsMux adds Go's profiles under /debug/pprof/ to the server's
// operations endpoints (/metrics, /healthz, /readyz) when pprofOn.
func metricsMux(mux *http.ServeMux, pprofOn bool) *http.ServeMux {
	if pprofOn {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	}
	return mux
}

// serveMetrics serves h on lis in the background until the returned server
// is closed.
func serveMetrics(lis net.Listener, h http.Handler, logger *slog.Logger) *http.Server {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	base := "http://" + lis.Addr().String()
	logger.Info("serving metrics on "+base+"/metrics, health on "+base+"/healthz and "+base+"/readyz",
		"addr", lis.Addr().String(), "metrics_url", base+"/metrics")
	go func() {
		if err := hs.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics endpoint failed", "err", err)
		}
	}()
	return hs
}

// isLoopback reports whether every address the listen address can bind to is
// a loopback address. An empty host (":7400") binds to all interfaces.
func isLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("listen address %q: %w", addr, err)
	}
	if host == "" {
		return false, nil
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback(), nil
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return false, fmt.Errorf("listen address %q: cannot resolve host", addr)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false, nil
		}
	}
	return true, nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
	// Client text reaches log lines (refusals, faults, audit details):
	// card numbers in it are redacted whatever the component.
	return slog.New(pan.NewHandler(h)), nil
}
