package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/posfleet/posfleet/client"
	"github.com/posfleet/posfleet/server"
)

// A server on a loopback port, asked for its health by a client, then shut
// down by cancelling Serve's context.
func Example() {
	dir, err := os.MkdirTemp("", "posfleet-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	srv, err := server.New(server.DefaultConfig(dir), slog.New(slog.DiscardHandler))
	if err != nil {
		panic(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()

	c, err := client.Dial(lis.Addr().String(), client.WithInsecure())
	if err != nil {
		panic(err)
	}
	resp, err := healthpb.NewHealthClient(c.Conn()).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.GetStatus())
	c.Close()

	cancel()                     // stop accepting, drain, close storage
	fmt.Println(<-served == nil) // Serve returns once shutdown is complete
	// Output:
	// SERVING
	// true
}
