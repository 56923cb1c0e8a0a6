package loadgen_test

import (
	"strings"
	"testing"

	"github.com/posfleet/posfleet/loadgen"
)

func TestParseSLO(t *testing.T) {
	tests := []struct {
		in        string
		op        string
		metric    string
		cmp       string
		threshold float64
		wantErr   string
	}{
		{in: "authorize.p99<=20ms", op: "authorize", metric: "p99", cmp: "<=", threshold: 20},
		{in: "txn.p50 < 1.5ms", op: "txn", metric: "p50", cmp: "<", threshold: 1.5},
		{in: "heartbeat.p99.9<=1s", op: "heartbeat", metric: "p999", cmp: "<=", threshold: 1000},
		{in: "register.max<2s", op: "register", metric: "max", cmp: "<", threshold: 2000},
		{in: "authorize.error_rate<1%", op: "authorize", metric: "error_rate", cmp: "<", threshold: 0.01},
		{in: "authorize.error_rate<=0.001", op: "authorize", metric: "error_rate", cmp: "<=", threshold: 0.001},
		{in: "health.achieved_rate>=20000/s", op: "health", metric: "achieved_rate", cmp: ">=", threshold: 20000},
		{in: "txn.achieved_rate>90", op: "txn", metric: "achieved_rate", cmp: ">", threshold: 90},
		{in: "authorize.p99=20ms", wantErr: "want OP.METRIC"},
		{in: "p99<=20ms", wantErr: "OP.METRIC on the left"},
		{in: "authorize.p98<=20ms", wantErr: "unknown metric"},
		{in: "authorize.p99<=20", wantErr: "duration"},
		{in: "authorize.p99<=", wantErr: "missing value"},
		{in: "authorize.error_rate<150%", wantErr: "fraction"},
		{in: "txn.achieved_rate>=fast", wantErr: "rate per second"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := loadgen.ParseSLO(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Op != tt.op || s.Metric != tt.metric || s.Cmp != tt.cmp || !near(s.Threshold, tt.threshold, 1e-9) {
				t.Errorf("got %s %s %s %v, want %s %s %s %v", s.Op, s.Metric, s.Cmp, s.Threshold, tt.op, tt.metric, tt.cmp, tt.threshold)
			}
		})
	}
}

func TestEvaluateSLOs(t *testing.T) {
	res := &loadgen.Result{Ops: []loadgen.OpResult{{
		Name:         "authorize",
		Count:        1000,
		Errors:       5,
		ErrorRate:    0.005,
		AchievedRate: 480,
		Latency:      loadgen.Latency{P50: 2, P90: 6, P99: 18, P999: 40, Max: 95},
	}}}
	tests := []struct {
		expr string
		pass bool
	}{
		{"authorize.p99<=20ms", true},
		{"authorize.p99<=18ms", true},
		{"authorize.p99<18ms", false},
		{"authorize.p999<=30ms", false},
		{"authorize.max<100ms", true},
		{"authorize.p50<1ms", false},
		{"authorize.error_rate<1%", true},
		{"authorize.error_rate<=0.001", false},
		{"authorize.achieved_rate>=450", true},
		{"authorize.achieved_rate>500", false},
		{"refund.p99<=1s", false}, // never ran: fails
	}
	for _, tt := range tests {
		s, err := loadgen.ParseSLO(tt.expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Evaluate(res); got.Pass != tt.pass {
			t.Errorf("%s: got pass=%v (value %v), want %v", tt.expr, got.Pass, got.Value, tt.pass)
		}
	}
	slos, err := loadgen.ParseSLOs([]string{"authorize.p99<=20ms", "authorize.error_rate<1%"})
	if err != nil {
		t.Fatal(err)
	}
	if !loadgen.EvaluateSLOs(res, slos) || len(res.SLOs) != 2 {
		t.Errorf("EvaluateSLOs: got %+v, want two passes", res.SLOs)
	}
	slos = append(slos, loadgen.SLO{Expr: "x", Op: "authorize", Metric: "p50", Cmp: "<", Threshold: 1})
	if loadgen.EvaluateSLOs(res, slos) {
		t.Error("EvaluateSLOs passed with a failing check")
	}
	if _, err := loadgen.ParseSLOs([]string{"ok.p99<1s", "bad"}); err == nil {
		t.Error("ParseSLOs accepted a bad check")
	}
}
