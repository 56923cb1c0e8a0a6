package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// countingNode is a gRPC server standing in for one cluster node: it
// answers every TerminalService call Unimplemented (an answer, so the
// client does not move to another node) and counts the calls it got.
type countingNode struct {
	pb.UnimplementedTerminalServiceServer
	addr  string
	calls atomic.Int64
}

func startCountingNode(t *testing.T) *countingNode {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &countingNode{addr: lis.Addr().String()}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		n.calls.Add(1)
		return h(ctx, req)
	}))
	pb.RegisterTerminalServiceServer(srv, n)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return n
}

// nodeOf returns which of nodes got the calls fn made (exactly one must).
func nodeOf(t *testing.T, nodes []*countingNode, fn func()) int {
	t.Helper()
	before := make([]int64, len(nodes))
	for i, n := range nodes {
		before[i] = n.calls.Load()
	}
	fn()
	got := -1
	for i, n := range nodes {
		if n.calls.Load() != before[i] {
			if got >= 0 {
				t.Fatalf("calls reached nodes %d and %d; want one node", got, i)
			}
			got = i
		}
	}
	if got < 0 {
		t.Fatal("no node got a call")
	}
	return got
}

// TestTerminalSimulatorKeepsToItsNode checks that the simulator, given a
// list of nodes, dials them in the order its serial number ranks them
// (client.WithTargetKey): the node it reaches is the one the SDK ranks
// first for that serial, whatever the order of the list, so a terminal
// goes back to the same node every time.
func TestTerminalSimulatorKeepsToItsNode(t *testing.T) {
	nodes := []*countingNode{startCountingNode(t), startCountingNode(t)}
	lists := []string{nodes[0].addr + "," + nodes[1].addr, nodes[1].addr + "," + nodes[0].addr}
	dir := t.TempDir()
	chosen := map[int]bool{}
	// At least 8 serials, and more until both nodes were chosen: the ports
	// are random, so 8 serials all rank the same node first one run in 128.
	for i := 0; i < 64 && (i < 8 || len(chosen) < len(nodes)); i++ {
		serial := fmt.Sprintf("SN-CLUSTER-%d", i)
		want := nodeOf(t, nodes, func() {
			c, err := client.Dial(lists[0], client.WithInsecure(), client.WithTargetKey(serial))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = c.Heartbeat(t.Context(), &pb.TerminalStatus{})
		})
		chosen[want] = true
		for _, list := range lists {
			file := filepath.Join(dir, serial+".json")
			st := terminalState{TerminalID: "T-" + serial, SerialNumber: serial, MerchantID: "M1", StoreID: "s1", Credential: "secret", Target: list}
			b, err := json.Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, b, 0o600); err != nil {
				t.Fatal(err)
			}
			got := nodeOf(t, nodes, func() {
				if out, code := runCLI(t, nil, "terminal", "heartbeat", "--terminal-file", file); code == 0 {
					t.Fatalf("heartbeat against a node that answers Unimplemented: exit 0\n%s", out)
				}
			})
			if got != want {
				t.Errorf("serial %s, --target %s: got node %d, want node %d (the one its serial ranks first)", serial, list, got, want)
			}
		}
	}
	if len(chosen) != len(nodes) {
		t.Errorf("64 serials chose nodes %v; want them spread over both (a weak test otherwise)", chosen)
	}
}
