package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
)

// rawCodec sends and receives messages as the bytes given: a client that
// speaks gRPC framing but not protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// A request message that is not protobuf is the caller's mistake:
// InvalidArgument with a BadRequest detail, not Internal, on unary calls
// and streams alike; authentication still comes first.
func TestUndecodableMessageIsInvalidArgument(t *testing.T) {
	e := newFleetEnv(t)
	garbage := []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x07}
	call := func(ctx context.Context, method string) error {
		var out []byte
		return e.conn.Invoke(ctx, method, &garbage, &out, grpc.ForceCodecV2(rawCodec{}))
	}
	tests := []struct {
		name   string
		ctx    context.Context
		method string
		want   codes.Code
	}{
		{"public unary", t.Context(), "/grpc.health.v1.Health/Check", codes.InvalidArgument},
		{"admin unary", e.adminCtx(), "/posfleet.v1.AdminService/ListMerchants", codes.InvalidArgument},
		{"unauthenticated", t.Context(), "/posfleet.v1.AdminService/ListMerchants", codes.Unauthenticated},
	}
	for _, tc := range tests {
		err := call(tc.ctx, tc.method)
		if got := status.Code(err); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if tc.want == codes.InvalidArgument && len(violationFields(err)) == 0 {
			t.Errorf("%s: no BadRequest field violation in %v", tc.name, err)
		}
	}
	desc := &grpc.StreamDesc{ServerStreams: true}
	st, err := e.conn.NewStream(t.Context(), desc, "/grpc.health.v1.Health/Watch", grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SendMsg(&garbage); err != nil {
		t.Fatal(err)
	}
	st.CloseSend()
	var out []byte
	if err := st.RecvMsg(&out); status.Code(err) != codes.InvalidArgument {
		t.Errorf("stream with an undecodable message: %v, want InvalidArgument", err)
	}
	// The server still serves well-formed calls.
	if _, err := e.admin.ListMerchants(e.adminCtx(), nil); err != nil {
		t.Errorf("ListMerchants after garbage: %v", err)
	}
}

// startRawServer runs a server with cfg and returns its address.
func startRawServer(t *testing.T, cfg server.Config) string {
	t.Helper()
	conn, _ := startServer(t, cfg)
	return conn.Target()
}

// Headers beyond MaxHeaderListSize are refused before they are kept: 40
// Health/Watch streams with 1 MiB of headers each (the flood used
// 250 × 8 MB on one connection and took the server to 2 GB) leave the heap
// where it was; each such stream is reset or its connection closed, and
// the server keeps answering. A raw HTTP/2 client is used because grpc-go's
// client refuses to send such headers itself.
func TestOversizedHeadersAreRefused(t *testing.T) {
	cfg := server.DefaultConfig(t.TempDir())
	cfg.AdminToken = testAdminToken
	addr := startRawServer(t, cfg)
	const streams = 40
	heapBefore := heapInUse()
	for i := range streams {
		// Half the streams carry one huge value, half many 1 KiB values.
		if outcome := sendBigHeaders(t, addr, i%2 == 0); outcome == "served" {
			t.Fatalf("stream %d with 1 MiB of headers was served", i)
		}
	}
	grew := heapInUse() - heapBefore
	t.Logf("header flood: %d streams with 1 MiB of headers, heap +%d KiB", streams, grew>>10)
	if grew > 16<<20 {
		t.Errorf("heap grew by %d MiB under %d MiB of headers, want < 16 MiB", grew>>20, streams)
	}
	if _, err := dialAdmin(t, addr).ListMerchants(bearer(t.Context(), testAdminToken), nil); err != nil {
		t.Errorf("a normal call after the flood: %v", err)
	}
}

// sendBigHeaders opens a connection to addr and a Health/Watch stream with
// 1 MiB of headers (one value, or many 1 KiB ones), and returns what the
// server did: "reset" (RST_STREAM), "closed" (GOAWAY or end of the
// connection) or "served" (response headers).
func sendBigHeaders(t *testing.T, addr string, oneValue bool) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", "/grpc.health.v1.Health/Watch"}, {":authority", "x"},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if oneValue {
		enc.WriteField(hpack.HeaderField{Name: "x-padding", Value: strings.Repeat("a1b2c3d4", 1<<17)})
	} else {
		for i := range 1024 {
			enc.WriteField(hpack.HeaderField{Name: fmt.Sprintf("x-pad-%d", i), Value: strings.Repeat("z", 1<<10)})
		}
	}
	// Writes may fail once the server has given up on the connection. The
	// empty request message makes a served stream answer at once.
	if writeHeaderBlock(fr, 1, block.Bytes()) == nil {
		_ = fr.WriteData(1, true, make([]byte, 5))
	}
	for {
		f, err := fr.ReadFrame()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("no answer from the server within 10s")
		}
		if err != nil {
			return "closed"
		}
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			return "reset"
		case *http2.GoAwayFrame:
			return "closed"
		case *http2.HeadersFrame:
			if f.StreamID == 1 {
				return "served"
			}
		}
	}
}

// writeHeaderBlock writes one header block as HEADERS and CONTINUATION
// frames of 16 KiB.
func writeHeaderBlock(fr *http2.Framer, id uint32, block []byte) error {
	const chunk = 16 << 10
	first := block[:min(chunk, len(block))]
	rest := block[len(first):]
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndHeaders: len(rest) == 0}); err != nil {
		return err
	}
	for len(rest) > 0 {
		n := min(chunk, len(rest))
		if err := fr.WriteContinuation(id, n == len(rest), rest[:n]); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

// A flood of idle connections (the issue opened 21,000 and exhausted file
// descriptors) is cut at MaxConnections: the ones beyond are closed at once,
// the process's descriptors stay bounded, and clients connect again once
// the flood goes.
func TestConnectionFloodIsCapped(t *testing.T) {
	cfg := server.DefaultConfig(t.TempDir())
	cfg.AdminToken = testAdminToken
	cfg.MaxConnections = 20
	conn, _ := startServer(t, cfg)
	addr := conn.Target()
	fdsBefore := openFDs(t)
	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	closedByServer := 0
	for range 200 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, c)
	}
	for _, c := range flood {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			closedByServer++
		}
	}
	// The test's own 200 client sockets count too; the server side must add
	// at most its cap (plus the test connection).
	grew := openFDs(t) - fdsBefore
	t.Logf("connection flood: 200 connections, cap %d, %d closed by the server, descriptors +%d (200 of them the client's)", cfg.MaxConnections, closedByServer, grew)
	if grew > 200+cfg.MaxConnections+5 {
		t.Errorf("open descriptors grew by %d with 200 connections and a cap of %d", grew, cfg.MaxConnections)
	}
	if closedByServer < 200-cfg.MaxConnections {
		t.Errorf("connections closed by the server = %d, want at least %d", closedByServer, 200-cfg.MaxConnections)
	}
	for _, c := range flood {
		c.Close()
	}
	flood = nil
	// Slots come back as the flood's connections close.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := dialAdmin(t, addr).ListMerchants(bearer(ctx, testAdminToken), nil)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a client after the flood: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dialAdmin returns an admin client on a new connection to addr.
func dialAdmin(t *testing.T, addr string) pb.AdminServiceClient {
	t.Helper()
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return pb.NewAdminServiceClient(c)
}

// heapInUse returns the bytes of heap in use after a collection.
func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("counting open descriptors needs /proc/self/fd: %v", err)
		}
		t.Skipf("no /proc/self/fd to count open descriptors: %v", err)
	}
	return len(ents)
}

// Idle connections are closed after MaxConnectionIdle (5 minutes by
// default; they used to live 30): the client sees its connection go away
// without having closed it.
func TestIdleConnectionsAreClosed(t *testing.T) {
	cfg := server.DefaultConfig(t.TempDir())
	cfg.AdminToken = testAdminToken
	cfg.MaxConnectionIdle = 300 * time.Millisecond
	conn, _ := startServer(t, cfg)
	if _, err := pb.NewAdminServiceClient(conn).ListMerchants(bearer(t.Context(), testAdminToken), nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for st := conn.GetState(); st == connectivity.Ready; st = conn.GetState() {
		if !conn.WaitForStateChange(ctx, st) {
			t.Fatal("connection still open 10s after it went idle")
		}
	}
}
