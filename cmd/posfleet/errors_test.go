package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestHumanError(t *testing.T) {
	withDetails := func(c codes.Code, msg string, details ...*errdetails.ErrorInfo) error {
		st := status.New(c, msg)
		for _, d := range details {
			st, _ = st.WithDetails(d)
		}
		return st.Err()
	}
	badReq, _ := status.New(codes.InvalidArgument, "invalid request").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "amount.currency", Description: "must be 3 letters"}},
	})
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"domain prefix stripped, reason kept", withDetails(codes.NotFound, "configpush: rollout not found", &errdetails.ErrorInfo{Reason: "ROLLOUT_NOT_FOUND"}),
			"not found: rollout not found (ROLLOUT_NOT_FOUND)"},
		{"wrapped status", fmt.Errorf("terminal: %w", status.Error(codes.PermissionDenied, "terminal is suspended")), "permission denied: terminal is suspended"},
		{"field violations", badReq.Err(), "invalid input: invalid request\n  amount.currency: must be 3 letters"},
		{"server text escaped", status.Error(codes.Internal, "boom\n\x1b[2Kposfleet: ok"), `internal server error: boom\n\x1b[2Kposfleet: ok`},
		{"TLS server, plaintext client", status.Error(codes.Unavailable, `connection error: desc = "error reading server preface: EOF"`), "hint: the server may speak TLS: use --tls-ca"},
		{"plaintext server, TLS client", status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: tls: first record does not look like a TLS handshake"`), "hint: the server speaks plaintext"},
		{"nobody listening", status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`), "is 'posfleet serve' running"},
		{"plain error", fmt.Errorf("--amount %q: bad", "x\x1b"), `--amount "x\x1b": bad`},
	} {
		got := humanError(tc.err)
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s: humanError = %q, want it to contain %q", tc.name, got, tc.want)
		}
		if strings.Contains(got, "rpc error") || strings.Contains(got, "\x1b") {
			t.Errorf("%s: humanError = %q: raw status text or escape left", tc.name, got)
		}
	}
}

// writeSelfSigned writes a certificate for 127.0.0.1 and its key as PEM
// files and returns their paths.
func writeSelfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "posfleet-test"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// The mistakes of a first hour, made against real servers, are explained
// with a hint instead of raw gRPC or Badger text.
func TestHumanErrorsFromRealServers(t *testing.T) {
	plain := StartAdminCLI(t)
	cert, key := writeSelfSigned(t)
	tlsDir := t.TempDir()
	tlsSrv := StartServe(t, tlsDir, "--tls-cert", cert, "--tls-key", key)
	tlsToken := filepath.Join(tlsDir, "admin.token")

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"plaintext client, TLS server", []string{"admin", "--target", tlsSrv.Addr, "--admin-token-file", tlsToken, "--timeout", "5s", "merchants", "list"},
			"the server may speak TLS: use --tls-ca"},
		{"TLS client, plaintext server", []string{"admin", "--target", plain.P.Addr, "--admin-token-file", plain.TokenFile, "--tls-ca", cert, "--timeout", "5s", "merchants", "list"},
			"the server speaks plaintext"},
		{"TLS with its CA works", []string{"admin", "--target", tlsSrv.Addr, "--admin-token-file", tlsToken, "--tls-ca", cert, "merchants", "list"}, "MERCHANT"},
		{"not found", []string{"admin", "--target", plain.P.Addr, "--admin-token-file", plain.TokenFile, "rollout", "get", "--id", "ro-99"}, "posfleet admin: not found: "},
		{"second server on one data dir", []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", tlsDir}, "another posfleet is using " + tlsDir},
	} {
		out, _ := runCLI(t, nil, tc.args...)
		if !strings.Contains(out, tc.want) || strings.Contains(out, "rpc error: code =") || strings.Contains(out, "Badger") {
			t.Errorf("%s: output %q, want it to contain %q and no raw gRPC or Badger text", tc.name, out, tc.want)
		}
	}
}
