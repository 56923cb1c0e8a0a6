package loadgen_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/posfleet/posfleet/loadgen"
)

// A short steady run of health checks against a loopback gRPC server, its
// SLOs checked and its report written. The posfleet loadgen command drives
// a simulated fleet (a Fleet executor) the same way.
func ExampleNewRun() {
	// A loopback server answering health checks stands in for posfleet.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(lis)
	defer gs.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	defer conn.Close()

	p, err := loadgen.Builtin(loadgen.ProfileSteady, 200, time.Second, 0)
	if err != nil {
		panic(err)
	}
	run, err := loadgen.NewRun(loadgen.Config{Profile: p, Users: 4}, slog.New(slog.DiscardHandler))
	if err != nil {
		panic(err)
	}
	exec, err := loadgen.NewHealthExecutor([]grpc.ClientConnInterface{conn}, "", 5*time.Second)
	if err != nil {
		panic(err)
	}
	if err := run.Drive(context.Background(), exec); err != nil {
		panic(err)
	}
	res := run.Finish()

	slos, err := loadgen.ParseSLOs([]string{"health.error_rate<1%", "health.p99<=5s"})
	if err != nil {
		panic(err)
	}
	fmt.Println("SLOs met:", loadgen.EvaluateSLOs(res, slos))

	dir, err := os.MkdirTemp("", "posfleet-loadgen-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	if err := loadgen.WriteReport(dir, res); err != nil { // report.json, HTML, summary
		panic(err)
	}
	// Output:
	// SLOs met: true
}
