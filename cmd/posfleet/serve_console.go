package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/server/console"
)

// consoleOff reports whether --console-listen turns the console off.
func consoleOff(addr string) bool { return addr == "" || addr == "off" }

// validateConsole checks --console-listen like --listen: a non-loopback
// address needs TLS or --insecure.
func validateConsole(addr string, withTLS, insecure bool) error {
	if consoleOff(addr) {
		return nil
	}
	if _, err := net.ResolveTCPAddr("tcp", addr); err != nil {
		return fmt.Errorf("--console-listen %q: %w", addr, err)
	}
	if withTLS || insecure {
		return nil
	}
	loop, err := isLoopback(addr)
	if err != nil {
		return fmt.Errorf("--console-listen: %w", err)
	}
	if !loop {
		return fmt.Errorf("refusing to serve the console in plaintext on non-loopback address %s: give --tls-cert/--tls-key, or --insecure to accept the risk", addr)
	}
	return nil
}

// listenConsole binds the console's address; nil when it is off.
func listenConsole(addr string) (net.Listener, error) {
	if consoleOff(addr) {
		return nil, nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--console-listen: %w (use --console-listen off to run without the console)", err)
	}
	return lis, nil
}

// startConsole serves the web console on lis in the background, over TLS
// when tlsCfg is set, as a client of srv's own AdminService. Close the
// returned function to stop it.
func startConsole(srv *server.Server, lis net.Listener, tlsCfg *tls.Config, logger *slog.Logger) (func(), error) {
	conn, err := srv.InProcessConn()
	if err != nil {
		return nil, err
	}
	cfg := console.DefaultConfig()
	cfg.Secure = tlsCfg != nil
	con, err := console.New(cfg, pb.NewAdminServiceClient(conn), logger.With("component", "console"))
	if err != nil {
		conn.Close()
		return nil, err
	}
	hs := &http.Server{Handler: con, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
		lis = tls.NewListener(lis, tlsCfg.Clone())
	}
	go func() {
		if err := hs.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("console failed", "err", err)
		}
	}()
	logger.Info("console serving", "url", scheme+"://"+lis.Addr().String()+"/")
	return func() {
		hs.Close()
		conn.Close()
	}, nil
}
