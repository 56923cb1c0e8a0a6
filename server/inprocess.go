package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/netip"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"
)

// ForwardedPeerMetadata is the metadata key with which an in-process client
// (the web console) names the address of the person it calls for, e.g.
// "203.0.113.7:51234". The server believes it only on connections made with
// InProcessConn, which nothing outside the process can open; anywhere else
// the key is ignored. Failed sign-ins are then rate limited per browser
// address, and the audit trail names it, exactly as for a direct caller.
const ForwardedPeerMetadata = "x-posfleet-forwarded-peer"

// inProcessAddr is the remote address of connections made by InProcessConn.
type inProcessAddr struct{}

func (inProcessAddr) Network() string { return "inprocess" }
func (inProcessAddr) String() string  { return "in-process" }

// inProcessListener marks the connections it accepts as in-process.
type inProcessListener struct{ *bufconn.Listener }

func (l inProcessListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return inProcessConn{c}, nil
}

type inProcessConn struct{ net.Conn }

func (inProcessConn) RemoteAddr() net.Addr { return inProcessAddr{} }

// forwardedPeer returns the address an in-process caller forwarded, or
// "in-process" when it forwarded none (or something that is not an
// address).
func forwardedPeer(ctx context.Context) string {
	v := metadata.ValueFromIncomingContext(ctx, ForwardedPeerMetadata)
	if len(v) == 1 {
		if ap, err := netip.ParseAddrPort(v[0]); err == nil {
			return ap.String()
		}
	}
	return inProcessAddr{}.String()
}

// InProcessConn returns a client connection to this server's own services,
// carried in memory: the same interceptors (authentication, roles, quotas,
// audit, validation) apply to its calls as to any other. The caller closes
// it; the server's shutdown ends it too. Calls may carry
// ForwardedPeerMetadata.
func (s *Server) InProcessConn() (*grpc.ClientConn, error) {
	if s.grpc == nil {
		return nil, errors.New("server: not built")
	}
	lis := bufconn.Listen(1 << 20)
	go s.grpc.Serve(inProcessListener{lis}) //nolint:errcheck // ends with the server
	creds := insecure.NewCredentials()
	if s.cfg.TLS != nil {
		// The server's credentials apply to every listener, so the
		// in-memory connection speaks TLS too. There is no network to
		// attack on it; the server's own certificate is pinned rather than
		// checked against a host name that an in-memory pipe does not have.
		creds = credentials.NewTLS(pinnedTLS(s.cfg.TLS))
	}
	return grpc.NewClient("passthrough:///in-process",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(creds))
}

// pinnedTLS is a client configuration that accepts exactly the leaf
// certificates of the server's configuration.
func pinnedTLS(server *tls.Config) *tls.Config {
	var leaves [][]byte
	for _, c := range server.Certificates {
		if len(c.Certificate) > 0 {
			leaves = append(leaves, c.Certificate[0])
		}
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			for _, leaf := range leaves {
				if len(raw) > 0 && bytes.Equal(raw[0], leaf) {
					return nil
				}
			}
			return errors.New("server: in-process connection: not the server's certificate")
		},
	}
}
