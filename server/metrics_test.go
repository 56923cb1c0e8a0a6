package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// scrape fetches h's /metrics and parses it.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// sample returns the value of the series of family name whose labels
// include want (a counter's or gauge's value, a histogram's count), and
// whether there is one.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// trafficEnv is a server on disk that has seen a little of everything:
// approvals and a decline, a heartbeat, an open config watch, a publish
// and its acknowledgement, and a quota refusal.
func trafficEnv(t *testing.T) *obsEnv {
	t.Helper()
	cfg := server.DefaultConfig(t.TempDir())
	cfg.Quotas.Identity = server.Quota{Rate: 0.001, Burst: 1}
	e := startObsEnv(t, cfg)
	ctx := bearer(t.Context(), e.cred)
	for _, r := range []*pb.AuthorizeRequest{saleReq("m-1", 1250), saleReq("m-2", 750), saleReq("m-1", 1250)} {
		if resp, err := e.pay.Authorize(ctx, r); err != nil || resp.GetResponseCode() != "00" {
			t.Fatalf("Authorize %s: %v, %v; want an approval", r.GetRequestId(), resp, err)
		}
	}
	decline := saleReq("m-3", 999)
	decline.Card.Token = "tok_test_decline"
	if resp, err := e.pay.Authorize(ctx, decline); err != nil || resp.GetResponseCode() != "05" {
		t.Fatalf("Authorize of tok_test_decline: %v, %v; want 05", resp, err)
	}
	if _, err := e.term.Heartbeat(ctx, &pb.HeartbeatRequest{Status: &pb.TerminalStatus{}}); err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	// The identity quota allows one call; the second is refused.
	if _, err := e.term.VerifyMerchant(ctx, &pb.VerifyMerchantRequest{}); err != nil {
		t.Fatalf("VerifyMerchant: %v", err)
	}
	if _, err := e.term.VerifyMerchant(ctx, &pb.VerifyMerchantRequest{}); err == nil {
		t.Fatal("second VerifyMerchant within the quota of one: got nil, want ResourceExhausted")
	}

	wctx, cancel := context.WithCancel(bearer(t.Context(), e.cred))
	t.Cleanup(cancel)
	st, err := e.term.WatchConfig(wctx, &pb.WatchConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := e.admin.PublishConfig(bearer(t.Context(), testAdminToken), &pb.PublishConfigRequest{
		Scope: &pb.ConfigScope{MerchantId: "M1"}, Settings: &pb.Settings{ReceiptHeader: proto.String("Kia ora")},
	})
	if err != nil {
		t.Fatalf("PublishConfig: %v", err)
	}
	for {
		msg, err := st.Recv()
		if err != nil {
			t.Fatalf("WatchConfig Recv: %v", err)
		}
		if msg.GetVersion() == pub.GetVersion() {
			break
		}
	}
	if _, err := e.term.AckConfig(ctx, &pb.AckConfigRequest{
		Version: pub.GetVersion(), Result: pb.ConfigApplyResult_CONFIG_APPLY_RESULT_APPLIED,
	}); err != nil {
		t.Fatalf("AckConfig: %v", err)
	}
	return e
}

func TestMetricsCountTraffic(t *testing.T) {
	storetest.RequireBadger(t, "the disk-space gauges")
	e := trafficEnv(t)
	fams := scrape(t, e.srv.OpsHandler())

	authorize := map[string]string{"grpc_service": "posfleet.v1.PaymentService", "grpc_method": "Authorize"}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		// Replays are not decisions: two approvals, one decline.
		{"posfleet_payment_authorizations_total", map[string]string{"decision": "approved", "response_code": "00"}, 2},
		{"posfleet_payment_authorizations_total", map[string]string{"decision": "declined", "response_code": "05"}, 1},
		{"posfleet_payment_authorizations_total", map[string]string{"decision": "declined", "response_code": "51"}, 0},
		{"posfleet_payment_approved_minor_units_total", map[string]string{"currency": "NZD"}, 2000},
		// The gRPC provider sees every call, replays included.
		{"grpc_server_handled_total", merge(authorize, map[string]string{"grpc_code": "OK"}), 4},
		{"grpc_server_handled_total", merge(authorize, map[string]string{"grpc_code": "Internal"}), 0},
		{"grpc_server_handling_seconds", authorize, 4},
		{"grpc_server_handled_total", map[string]string{"grpc_method": "VerifyMerchant", "grpc_code": "ResourceExhausted"}, 1},
		{"posfleet_rate_limited_total", map[string]string{"reason": "quota_identity"}, 1},
		{"posfleet_rate_limited_total", map[string]string{"reason": "auth_failures"}, 0},
		{"posfleet_terminals", map[string]string{"connectivity": "online"}, 1},
		{"posfleet_terminals", map[string]string{"connectivity": "offline"}, 0},
		{"posfleet_config_watchers", nil, 1},
		{"posfleet_config_propagation_seconds", nil, 1},
		{"posfleet_config_rollouts", map[string]string{"state": "completed"}, 1},
		{"posfleet_config_rollouts", map[string]string{"state": "halted"}, 0},
		{"posfleet_alerts_total", map[string]string{"type": "merchant_mismatch"}, 0},
		{"posfleet_payment_engine_healthy", nil, 1},
		{"posfleet_disk_low", nil, 0},
	}
	for _, tc := range tests {
		got, ok := sample(fams, tc.name, tc.labels)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	// Present and plausible, values that depend on the machine.
	for _, name := range []string{"posfleet_payment_commit_decisions", "posfleet_payment_commit_seconds"} {
		if got, _ := sample(fams, name, nil); got < 1 {
			t.Errorf("%s count = %v, want at least one commit", name, got)
		}
	}
	if got, _ := sample(fams, "posfleet_disk_free_bytes", nil); got <= 0 {
		t.Errorf("posfleet_disk_free_bytes = %v, want > 0", got)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "posfleet_store_size_bytes", "posfleet_connections_open"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
	// Labels stay bounded: no terminal or merchant identifiers.
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v := l.GetValue(); v == e.tid || v == "M1" || strings.Contains(v, "SN-OBS") {
					t.Errorf("%s has label %s=%q: identifiers must not be labels", name, l.GetName(), v)
				}
			}
		}
	}
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func TestMetricsEndpointWaitsForNothing(t *testing.T) {
	// A scrape of a server that never served answers too: the endpoint
	// comes up before the gRPC listener.
	srv, err := server.New(server.DefaultConfig(t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fams := scrape(t, srv.OpsHandler())
	if got, ok := sample(fams, "posfleet_connections_open", nil); !ok || got != 0 {
		t.Errorf("posfleet_connections_open before Serve = %v (present %v), want 0", got, ok)
	}
	if _, ok := sample(fams, "grpc_server_handled_total", map[string]string{"grpc_method": "Authorize", "grpc_code": "OK"}); !ok {
		t.Error("grpc_server_handled_total for Authorize missing before the first call; want it initialized to 0")
	}
}

func TestRateLimitRefusalsAreCountedByReason(t *testing.T) {
	e := startObsEnv(t, server.DefaultConfig(t.TempDir()))
	// Failed authentications from one address are limited after a burst;
	// repeated registration attempts for one serial too.
	calls := []struct {
		reason string
		call   func() error
	}{
		{"auth_failures", func() error {
			_, err := e.term.Heartbeat(bearer(t.Context(), "not-a-credential"), &pb.HeartbeatRequest{Status: &pb.TerminalStatus{}})
			return err
		}},
		{"registration", func() error {
			_, err := e.term.Register(t.Context(), &pb.RegisterRequest{
				SerialNumber: "SN-OBS-1", EnrollmentCode: "WRONG-CODE", Device: &pb.DeviceInfo{Model: "A920"},
			})
			return err
		}},
	}
	for _, c := range calls {
		refused := 0
		for range 100 {
			if err := c.call(); status.Code(err) == codes.ResourceExhausted {
				refused++
				if refused == 3 {
					break
				}
			}
		}
		if refused == 0 {
			t.Fatalf("%s: no call refused with ResourceExhausted in 100", c.reason)
		}
		got, _ := sample(scrape(t, e.srv.OpsHandler()), "posfleet_rate_limited_total", map[string]string{"reason": c.reason})
		if got != float64(refused) {
			t.Errorf("posfleet_rate_limited_total{reason=%q} = %v, want %d", c.reason, got, refused)
		}
	}
}
