package loadgen_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/posfleet/posfleet/client"
	"github.com/posfleet/posfleet/loadgen"
)

// TestClusterCountsCallsAndMoves feeds node observations of two
// connections and checks the per-node account.
func TestClusterCountsCallsAndMoves(t *testing.T) {
	c := loadgen.NewCluster([]string{"a:1", "b:1", "c:1"}, 2)
	fail := errors.New("unavailable")
	for _, ob := range []struct {
		conn int
		call client.NodeCall
	}{
		{0, client.NodeCall{Node: "a:1"}},
		{1, client.NodeCall{Node: "b:1"}},
		{0, client.NodeCall{Node: "a:1", Err: fail}}, // node a dies
		{0, client.NodeCall{Err: fail}},              // reached no node
		{0, client.NodeCall{Node: "c:1"}},            // moved a → c
		{1, client.NodeCall{Node: "b:1"}},
		{0, client.NodeCall{Node: "c:1"}},
	} {
		c.Observer(ob.conn)(ob.call)
	}
	got := c.Result()
	want := []loadgen.TargetResult{
		{Target: "a:1", Requests: 2, Errors: 1, MovesOut: 1},
		{Target: "b:1", Requests: 2, Connections: 1},
		{Target: "c:1", Requests: 2, MovesIn: 1, Connections: 1},
	}
	if got.Moves != 1 || got.Unreached != 1 || len(got.Targets) != len(want) {
		t.Fatalf("got moves %d unreached %d targets %d, want 1, 1, 3", got.Moves, got.Unreached, len(got.Targets))
	}
	for i := range want {
		if got.Targets[i] != want[i] {
			t.Errorf("target %d: got %+v, want %+v", i, got.Targets[i], want[i])
		}
	}
	var b strings.Builder
	if err := loadgen.WriteTable(&b, &loadgen.Result{Cluster: got}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "targets: 1 moves between nodes, 1 calls reached no node") {
		t.Errorf("summary lacks the per-node line:\n%s", b.String())
	}
}
