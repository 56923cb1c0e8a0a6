package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/posfleet/posfleet/client"
)

// adminConn holds the flags that say how to reach a server as an operator:
// its address, the admin token and TLS.
type adminConn struct {
	fs        *flag.FlagSet
	target    *string
	tokenFile *string
	tlsCA     *string
	useTLS    *bool
}

// addAdminConnFlags registers --target (with its default and usage),
// --admin-token-file, --tls-ca and --tls on fs.
func addAdminConnFlags(fs *flag.FlagSet, target, targetUsage string) *adminConn {
	return &adminConn{
		fs:        fs,
		target:    fs.String("target", target, targetUsage),
		tokenFile: fs.String("admin-token-file", "./posfleet-data/admin.token", "file holding an admin token (or set POSFLEET_ADMIN_TOKEN)"),
		tlsCA:     fs.String("tls-ca", "", "CA certificate (PEM) to verify the server; enables TLS"),
		useTLS:    fs.Bool("tls", false, "connect with TLS using the system roots"),
	}
}

// dial connects to the target with the admin token: the file when given on
// the command line, else POSFLEET_ADMIN_TOKEN, else the default file.
func (a *adminConn) dial(extra ...client.Option) (*client.Client, error) {
	token := strings.TrimSpace(os.Getenv("POSFLEET_ADMIN_TOKEN"))
	if token == "" || isFlagSet(a.fs, "admin-token-file") {
		b, err := os.ReadFile(*a.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("admin token: %w (give --admin-token-file or POSFLEET_ADMIN_TOKEN)", err)
		}
		token = strings.TrimSpace(string(b))
	}
	opts := append([]client.Option{client.WithBearer(token)}, extra...)
	switch {
	case *a.tlsCA != "":
		pem, err := os.ReadFile(*a.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca: no certificate in %s", *a.tlsCA)
		}
		opts = append(opts, client.WithTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	case *a.useTLS:
		opts = append(opts, client.WithTLS(nil))
	default:
		opts = append(opts, client.WithInsecure())
	}
	return client.Dial(*a.target, opts...)
}
