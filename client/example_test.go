package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
)

// An operator's client: dial with an admin token, create a merchant and read
// it back. The example starts its own server on a loopback port.
func ExampleDial() {
	dir, err := os.MkdirTemp("", "posfleet-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	cfg := server.DefaultConfig(dir)
	cfg.AdminToken = "example-admin-token-0001"
	srv, err := server.New(cfg, slog.New(slog.DiscardHandler))
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
	defer func() { cancel(); <-served }()

	// Plaintext is for loopback and tests only.
	c, err := client.Dial(lis.Addr().String(), client.WithBearer(cfg.AdminToken), client.WithInsecure())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	_, err = c.Admin().CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{
		MerchantId: "MID1", LegalName: "Kiwi Foods Ltd", DisplayName: "Kiwi Foods", Mcc: "5411", Currency: "NZD",
	}})
	if err != nil {
		panic(err)
	}
	got, err := c.Admin().GetMerchant(ctx, &pb.GetMerchantRequest{MerchantId: "MID1"})
	if err != nil {
		panic(err)
	}
	fmt.Println(got.GetMerchant().GetLegalName(), got.GetMerchant().GetCurrency())
	// Output:
	// Kiwi Foods Ltd NZD
}

// A terminal of a cluster: every node in the target, the serial number as
// the key that picks the terminal's node, and a log line when a call fails
// on a node. Calls are made as with one node; the client moves to another
// node by itself when its node is gone.
func ExampleWithTargetKey() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	c, err := client.Dial("pos-a.example:7400,pos-b.example:7400,pos-c.example:7400",
		client.WithTLS(nil),
		client.WithBearer(os.Getenv("TERMINAL_CREDENTIAL")),
		client.WithTargetKey("SN-0001"),
		client.WithNodeObserver(func(nc client.NodeCall) {
			if nc.Err != nil {
				logger.Warn("call failed", "node", nc.Node, "method", nc.Method, "err", nc.Err)
			}
		}))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	_, _ = c.Heartbeat(context.Background(), &pb.TerminalStatus{AppVersion: "1.0.0"})
}
