package server_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
)

// watch opens a config watch for a terminal and returns the stream.
func (e *fleetEnv) watch(ctx context.Context, cred string, known uint64) pb.TerminalService_WatchConfigClient {
	e.t.Helper()
	st, err := e.term.WatchConfig(bearer(ctx, cred), &pb.WatchConfigRequest{KnownVersion: known})
	if err != nil {
		e.t.Fatalf("WatchConfig: %v", err)
	}
	return st
}

func (e *fleetEnv) publish(req *pb.PublishConfigRequest) *pb.PublishConfigResponse {
	e.t.Helper()
	resp, err := e.admin.PublishConfig(e.adminCtx(), req)
	if err != nil {
		e.t.Fatalf("PublishConfig: %v", err)
	}
	return resp
}

func recvConfig(t *testing.T, st pb.TerminalService_WatchConfigClient) *pb.WatchConfigResponse {
	t.Helper()
	msg, err := st.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	return msg
}

func TestConfigPublishWatchAckOverGRPC(t *testing.T) {
	e := newFleetEnv(t)
	e.merchant("M1", "S1")
	e.merchant("M2", "S1")
	type term struct{ id, cred string }
	var terms []term
	for i := range 3 {
		id, cred := e.registered(fmt.Sprintf("SN-%d", i), "M1", "S1")
		terms = append(terms, term{id, cred})
	}
	_, otherCred := e.registered("SN-OTHER", "M2", "S1")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var streams []pb.TerminalService_WatchConfigClient
	for _, tm := range terms {
		streams = append(streams, e.watch(ctx, tm.cred, 0))
	}
	other := e.watch(ctx, otherCred, 0)

	settings := &pb.Settings{
		ReceiptHeader:     proto.String("Kia ora"),
		DailyLimit:        &pb.Money{MinorUnits: 500000, Currency: "NZD"},
		HeartbeatInterval: durationpb.New(30 * time.Second),
		Extra:             map[string]string{"printer.density": "3"},
	}
	resp := e.publish(&pb.PublishConfigRequest{Scope: &pb.ConfigScope{MerchantId: "M1"}, Settings: settings, Description: "winter receipts"})
	if resp.GetVersion() == 0 || resp.GetRolloutId() == "" || resp.GetRollout().GetTargetedTerminals() != 3 {
		t.Fatalf("PublishConfig = %v, want a version, a rollout and 3 targeted terminals", resp)
	}
	for i, st := range streams {
		msg := recvConfig(t, st)
		s := msg.GetSettings()
		if msg.GetVersion() != resp.GetVersion() || s.GetReceiptHeader() != "Kia ora" || s.GetDailyLimit().GetMinorUnits() != 500000 ||
			s.GetExtra()["printer.density"] != "3" || s.GetHeartbeatInterval().AsDuration() != 30*time.Second || msg.GetRolloutId() != resp.GetRolloutId() {
			t.Fatalf("terminal %d got %v, want version %d with the published settings", i, msg, resp.GetVersion())
		}
		// The store's time zone and server defaults fill what no layer sets.
		if s.GetTimeZone() != "Pacific/Auckland" || len(s.GetAcceptedEntryModes()) != 5 {
			t.Errorf("terminal %d defaults: tz %q, %d entry modes; want the store's Pacific/Auckland and all 5", i, s.GetTimeZone(), len(s.GetAcceptedEntryModes()))
		}
		if _, err := e.term.AckConfig(bearer(t.Context(), terms[i].cred), &pb.AckConfigRequest{
			Version: msg.GetVersion(), Result: pb.ConfigApplyResult_CONFIG_APPLY_RESULT_APPLIED,
		}); err != nil {
			t.Fatalf("AckConfig: %v", err)
		}
	}
	ro, err := e.admin.GetRollout(e.adminCtx(), &pb.GetRolloutRequest{RolloutId: resp.GetRolloutId()})
	if err != nil {
		t.Fatal(err)
	}
	if r := ro.GetRollout(); r.GetApplied() != 3 || r.GetState() != pb.RolloutState_ROLLOUT_STATE_COMPLETED || r.GetDescription() != "winter receipts" {
		t.Errorf("rollout applied %d state %s description %q, want 3 COMPLETED winter receipts", r.GetApplied(), r.GetState(), r.GetDescription())
	}

	// The other merchant's terminal got nothing but the next global publish.
	g := e.publish(&pb.PublishConfigRequest{Scope: &pb.ConfigScope{}, Settings: &pb.Settings{ReceiptFooter: proto.String("bye")}})
	if msg := recvConfig(t, other); msg.GetVersion() != g.GetVersion() || msg.GetSettings().GetReceiptHeader() != "" {
		t.Errorf("other merchant got version %d header %q, want %d without M1's header", msg.GetVersion(), msg.GetSettings().GetReceiptHeader(), g.GetVersion())
	}

	// Heartbeats and the admin view agree with the stream.
	hb, err := e.term.Heartbeat(bearer(t.Context(), terms[0].cred), &pb.HeartbeatRequest{Status: &pb.TerminalStatus{}})
	if err != nil {
		t.Fatal(err)
	}
	if hb.GetConfigVersion() != g.GetVersion() {
		t.Errorf("heartbeat config_version %d, want %d", hb.GetConfigVersion(), g.GetVersion())
	}
	if d := hb.GetNextHeartbeat().AsDuration(); d < 27*time.Second || d > 33*time.Second {
		t.Errorf("next heartbeat %v, want the configured 30s ±10%%", d)
	}
	eff, err := e.admin.GetEffectiveConfig(e.adminCtx(), &pb.GetEffectiveConfigRequest{TerminalId: terms[0].id})
	if err != nil {
		t.Fatal(err)
	}
	if c := eff.GetConfig(); c.GetVersion() != g.GetVersion() || c.GetSettings().GetReceiptFooter() != "bye" || c.GetSettings().GetReceiptHeader() != "Kia ora" {
		t.Errorf("GetEffectiveConfig = %v, want version %d merging both layers", c, g.GetVersion())
	}
}

func TestConfigRequestValidationOverGRPC(t *testing.T) {
	e := newFleetEnv(t)
	e.merchant("M1", "S1")
	id, cred := e.registered("SN-1", "M1", "S1")
	tests := []struct {
		name   string
		req    *pb.PublishConfigRequest
		fields []string
	}{
		{"settings", &pb.PublishConfigRequest{Settings: &pb.Settings{
			DailyLimit:        &pb.Money{MinorUnits: 1, Currency: "nzd"},
			HeartbeatInterval: durationpb.New(time.Second),
		}}, []string{"settings.daily_limit.currency", "settings.heartbeat_interval"}},
		{"card number", &pb.PublishConfigRequest{Settings: &pb.Settings{
			Extra: map[string]string{"k": "4111111111111111"},
		}}, []string{"settings.extra[k]"}},
		{"plan", &pb.PublishConfigRequest{Rollout: &pb.RolloutPlan{StagePercents: []uint32{50, 20}, MaxFailureRatio: 2}},
			[]string{"rollout.stage_percents[1]", "rollout.stage_percents", "rollout.max_failure_ratio"}},
		{"window", &pb.PublishConfigRequest{Rollout: &pb.RolloutPlan{MaintenanceWindow: &pb.MaintenanceWindow{Start: "2:00", End: "25:00"}}},
			[]string{"rollout.maintenance_window.start", "rollout.maintenance_window.end"}},
		{"window jitter", &pb.PublishConfigRequest{Rollout: &pb.RolloutPlan{MaintenanceWindow: &pb.MaintenanceWindow{Start: "22:00", End: "02:00", Jitter: durationpb.New(5 * time.Hour)}}},
			[]string{"rollout.maintenance_window.jitter"}},
		{"scope formats", &pb.PublishConfigRequest{Scope: &pb.ConfigScope{MerchantId: "bad id!", TerminalId: "x"}},
			[]string{"scope.merchant_id", "scope.terminal_id"}},
		{"scope shape", &pb.PublishConfigRequest{Scope: &pb.ConfigScope{StoreId: "S1"}}, []string{"scope.merchant_id"}},
		{"bad duration", &pb.PublishConfigRequest{Settings: &pb.Settings{CardVelocityWindow: &durationpb.Duration{Seconds: 1, Nanos: -5}}},
			[]string{"settings.card_velocity_window"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.admin.PublishConfig(e.adminCtx(), tc.req)
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("PublishConfig: %v, want InvalidArgument", err)
			}
			got := violationFields(err)
			for _, f := range tc.fields {
				if !slices.Contains(got, f) {
					t.Errorf("violations %v, missing %s", got, f)
				}
			}
		})
	}
	_, err := e.admin.PublishConfig(e.adminCtx(), &pb.PublishConfigRequest{Scope: &pb.ConfigScope{MerchantId: "NOPE"}})
	if status.Code(err) != codes.NotFound || reason(err) != "CONFIG_SCOPE_NOT_FOUND" {
		t.Errorf("publish to unknown merchant: %v (reason %q), want NotFound CONFIG_SCOPE_NOT_FOUND", err, reason(err))
	}
	_, err = e.admin.GetRollout(e.adminCtx(), &pb.GetRolloutRequest{RolloutId: "ro-77"})
	if status.Code(err) != codes.NotFound || reason(err) != "ROLLOUT_NOT_FOUND" {
		t.Errorf("GetRollout unknown: %v, want NotFound ROLLOUT_NOT_FOUND", err)
	}
	if _, err = e.admin.GetRollout(e.adminCtx(), &pb.GetRolloutRequest{RolloutId: "77"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("GetRollout malformed: %v, want InvalidArgument", err)
	}
	if _, err = e.admin.ListRollouts(e.adminCtx(), &pb.ListRolloutsRequest{PageToken: "nope"}); reason(err) != "INVALID_PAGE_TOKEN" {
		t.Errorf("ListRollouts bad token: %v, want INVALID_PAGE_TOKEN", err)
	}
	if _, err = e.admin.GetEffectiveConfig(e.adminCtx(), &pb.GetEffectiveConfigRequest{TerminalId: "ZZZZZZZZ"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetEffectiveConfig unknown: %v, want NotFound", err)
	}
	tctx := bearer(t.Context(), cred)
	if _, err = e.term.AckConfig(tctx, &pb.AckConfigRequest{Version: 1}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("AckConfig without result: %v, want InvalidArgument", err)
	}
	_, err = e.term.AckConfig(tctx, &pb.AckConfigRequest{Version: 99, Result: pb.ConfigApplyResult_CONFIG_APPLY_RESULT_APPLIED})
	if status.Code(err) != codes.FailedPrecondition || reason(err) != "CONFIG_VERSION_UNKNOWN" {
		t.Errorf("AckConfig of a version never issued: %v, want FailedPrecondition CONFIG_VERSION_UNKNOWN", err)
	}
	if _, err = e.term.AckConfig(bearer(t.Context(), "wrong"), &pb.AckConfigRequest{Version: 1}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("AckConfig with a wrong credential: %v, want Unauthenticated", err)
	}
	_ = id
}

func TestWatchResumesWithoutGapsOrRepeats(t *testing.T) {
	e := newFleetEnv(t)
	e.merchant("M1", "S1")
	id, cred := e.registered("SN-1", "M1", "S1")
	v1 := e.publish(&pb.PublishConfigRequest{Settings: &pb.Settings{ReceiptHeader: proto.String("v1")}})
	ctx, cancel := context.WithCancel(t.Context())
	st := e.watch(ctx, cred, 0)
	if msg := recvConfig(t, st); msg.GetVersion() != v1.GetVersion() {
		t.Fatalf("first message version %d, want %d", msg.GetVersion(), v1.GetVersion())
	}
	cancel() // the terminal goes offline

	e.publish(&pb.PublishConfigRequest{Scope: &pb.ConfigScope{MerchantId: "M1"}, Settings: &pb.Settings{ReceiptHeader: proto.String("v2")}})
	v3 := e.publish(&pb.PublishConfigRequest{Scope: &pb.ConfigScope{TerminalId: id}, Settings: &pb.Settings{ReceiptFooter: proto.String("v3")}})

	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	st = e.watch(ctx2, cred, v1.GetVersion())
	msg := recvConfig(t, st)
	if msg.GetVersion() != v3.GetVersion() || msg.GetSettings().GetReceiptHeader() != "v2" || msg.GetSettings().GetReceiptFooter() != "v3" {
		t.Fatalf("on reconnect got version %d %v, want %d merging v2 and v3", msg.GetVersion(), msg.GetSettings(), v3.GetVersion())
	}
	// Nothing is repeated: the next message is the next publish.
	v4 := e.publish(&pb.PublishConfigRequest{Settings: &pb.Settings{ReceiptHeader: proto.String("v4")}})
	if msg := recvConfig(t, st); msg.GetVersion() != v4.GetVersion() {
		t.Errorf("next message version %d, want %d", msg.GetVersion(), v4.GetVersion())
	}
	// Reconnecting already up to date sends nothing until there is news;
	// a command arrives on the stream on its own.
	ctx3, cancel3 := context.WithCancel(t.Context())
	defer cancel3()
	st3 := e.watch(ctx3, cred, v4.GetVersion())
	cmd, err := e.admin.SendCommand(e.adminCtx(), &pb.SendCommandRequest{TerminalId: id, Type: pb.CommandType_COMMAND_TYPE_REBOOT})
	if err != nil {
		t.Fatal(err)
	}
	msg = recvConfig(t, st3)
	if msg.GetVersion() != 0 || len(msg.GetCommands()) != 1 || msg.GetCommands()[0].GetCommandId() != cmd.GetCommand().GetCommandId() {
		t.Errorf("up-to-date watch got %v, want only the reboot command", msg)
	}
}

func TestMaintenanceWindowOverGRPC(t *testing.T) {
	e := newFleetEnv(t)
	e.merchant("M1", "S1")
	e.registered("SN-1", "M1", "S1")
	resp := e.publish(&pb.PublishConfigRequest{
		Settings: &pb.Settings{ReceiptHeader: proto.String("night")},
		Rollout:  &pb.RolloutPlan{MaintenanceWindow: &pb.MaintenanceWindow{Start: "22:30", End: "02:00", Jitter: durationpb.New(10 * time.Minute)}},
	})
	if w := resp.GetRollout().GetPlan().GetMaintenanceWindow(); w.GetStart() != "22:30" || w.GetEnd() != "02:00" || w.GetJitter().AsDuration() != 10*time.Minute {
		t.Fatalf("rollout's maintenance window %v, want 22:30-02:00 with 10m jitter", w)
	}
	g, err := e.admin.GetRollout(e.adminCtx(), &pb.GetRolloutRequest{RolloutId: resp.GetRolloutId()})
	if err != nil || g.GetRollout().GetPlan().GetMaintenanceWindow().GetStart() != "22:30" {
		t.Fatalf("GetRollout = %v, %v, want the maintenance window", g, err)
	}
}

func TestRolloutControlOverGRPC(t *testing.T) {
	e := newFleetEnv(t)
	e.merchant("M1", "S1")
	for i := range 10 {
		e.registered(fmt.Sprintf("SN-%d", i), "M1", "S1")
	}
	base := e.publish(&pb.PublishConfigRequest{Settings: &pb.Settings{ReceiptHeader: proto.String("base")}})
	resp := e.publish(&pb.PublishConfigRequest{
		Settings: &pb.Settings{ReceiptHeader: proto.String("canary")},
		Rollout:  &pb.RolloutPlan{StagePercents: []uint32{30, 100}, MaxFailureRatio: 0.5, MinStageDuration: durationpb.New(time.Hour)},
	})
	id := resp.GetRolloutId()
	if r := resp.GetRollout(); r.GetState() != pb.RolloutState_ROLLOUT_STATE_RUNNING || r.GetPlan().GetMinStageDuration().AsDuration() != time.Hour {
		t.Fatalf("new rollout %v, want RUNNING with the plan", r)
	}

	if sup, _ := e.admin.GetRollout(e.adminCtx(), &pb.GetRolloutRequest{RolloutId: base.GetRolloutId()}); sup.GetRollout().GetState() != pb.RolloutState_ROLLOUT_STATE_SUPERSEDED {
		t.Errorf("base rollout state %s, want SUPERSEDED", sup.GetRollout().GetState())
	}
	p, err := e.admin.PauseRollout(e.adminCtx(), &pb.PauseRolloutRequest{RolloutId: id, Reason: "checking receipts"})
	if err != nil || p.GetRollout().GetState() != pb.RolloutState_ROLLOUT_STATE_PAUSED || p.GetRollout().GetStateReason() != "checking receipts" {
		t.Fatalf("PauseRollout = %v, %v", p, err)
	}
	list, err := e.admin.ListRollouts(e.adminCtx(), &pb.ListRolloutsRequest{State: pb.RolloutState_ROLLOUT_STATE_PAUSED})
	if err != nil || len(list.GetRollouts()) != 1 || list.GetRollouts()[0].GetRolloutId() != id {
		t.Errorf("ListRollouts(PAUSED) = %v, %v; want just %s", list, err, id)
	}
	if r, err := e.admin.ResumeRollout(e.adminCtx(), &pb.ResumeRolloutRequest{RolloutId: id}); err != nil || r.GetRollout().GetState() != pb.RolloutState_ROLLOUT_STATE_RUNNING {
		t.Fatalf("ResumeRollout = %v, %v", r, err)
	}
	a, err := e.admin.AbortRollout(e.adminCtx(), &pb.AbortRolloutRequest{RolloutId: id, Reason: "typo"})
	if err != nil || a.GetRollout().GetState() != pb.RolloutState_ROLLOUT_STATE_ABORTED {
		t.Fatalf("AbortRollout = %v, %v", a, err)
	}
	_, err = e.admin.AbortRollout(e.adminCtx(), &pb.AbortRolloutRequest{RolloutId: id})
	if status.Code(err) != codes.FailedPrecondition || reason(err) != "ROLLOUT_STATE" {
		t.Errorf("second abort: %v, want FailedPrecondition ROLLOUT_STATE", err)
	}
	terms, err := e.admin.ListTerminals(e.adminCtx(), &pb.ListTerminalsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tm := range terms.GetTerminals() {
		c, err := e.admin.GetEffectiveConfig(e.adminCtx(), &pb.GetEffectiveConfigRequest{TerminalId: tm.GetTerminalId()})
		if err != nil {
			t.Fatal(err)
		}
		if h := c.GetConfig().GetSettings().GetReceiptHeader(); h != "base" {
			t.Errorf("%s after abort has header %q, want base", tm.GetTerminalId(), h)
		}
	}
}

func TestShutdownEndsWatchStreams(t *testing.T) {
	dir := t.TempDir()
	cfg := server.DefaultConfig(dir)
	cfg.AdminToken = testAdminToken
	// Were open watches to hold up the graceful stop, it would last an hour
	// and the stop below would fail the test.
	cfg.ShutdownGrace = time.Hour
	conn, stop := startServer(t, cfg)
	e := &fleetEnv{t: t, conn: conn, stop: stop, admin: pb.NewAdminServiceClient(conn), term: pb.NewTerminalServiceClient(conn), dir: dir}
	e.merchant("M1", "S1")
	_, cred := e.registered("SN-1", "M1", "S1")
	v := e.publish(&pb.PublishConfigRequest{Settings: &pb.Settings{ReceiptHeader: proto.String("x")}})
	// Watch over a connection of its own: the stop below closes e.conn.
	wconn, err := grpc.NewClient(conn.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer wconn.Close()
	st, err := pb.NewTerminalServiceClient(wconn).WatchConfig(bearer(t.Context(), cred), &pb.WatchConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	recvConfig(t, st)
	errc := make(chan error, 1)
	go func() {
		_, err := st.Recv()
		errc <- err
	}()
	if err := stop(); err != nil {
		t.Fatalf("Serve after shutdown: %v", err)
	}
	if err := <-errc; status.Code(err) != codes.Unavailable || reason(err) != "SHUTTING_DOWN" {
		t.Errorf("watch ended with %v, want Unavailable SHUTTING_DOWN", err)
	}

	// Everything survives the restart.
	e2 := startFleetEnv(t, dir)
	tl, err := e2.admin.ListTerminals(e2.adminCtx(), &pb.ListTerminalsRequest{})
	if err != nil || len(tl.GetTerminals()) != 1 {
		t.Fatalf("ListTerminals after restart: %v, %v", tl, err)
	}
	c, err := e2.admin.GetEffectiveConfig(e2.adminCtx(), &pb.GetEffectiveConfigRequest{TerminalId: tl.GetTerminals()[0].GetTerminalId()})
	if err != nil || c.GetConfig().GetVersion() != v.GetVersion() || c.GetConfig().GetSettings().GetReceiptHeader() != "x" {
		t.Errorf("after restart: %v, %v; want version %d", c, err, v.GetVersion())
	}
}

func TestRegisterReturnsCurrentConfig(t *testing.T) {
	e := newFleetEnv(t)
	e.merchant("M1", "S1")
	v := e.publish(&pb.PublishConfigRequest{Scope: &pb.ConfigScope{MerchantId: "M1", StoreId: "S1"}, Settings: &pb.Settings{TimeZone: proto.String("Pacific/Auckland")}})
	p := e.provision("SN-1", "M1", "S1")
	resp, err := e.term.Register(t.Context(), &pb.RegisterRequest{SerialNumber: "SN-1", EnrollmentCode: p.GetEnrollmentCode(), Device: &pb.DeviceInfo{Model: "A920"}})
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.GetConfig(); c.GetVersion() != v.GetVersion() || c.GetSettings().GetTimeZone() != "Pacific/Auckland" {
		t.Errorf("Register config = %v, want version %d with the store's layer", c, v.GetVersion())
	}
}

// An open watch stream ends, before anything more is sent on it, once the
// credential it was opened with stops working: it used to keep receiving
// config versions and remote commands (marked delivered) after the
// terminal was suspended or its credential replaced.
func TestWatchEndsWhenItsCredentialStopsWorking(t *testing.T) {
	for _, tt := range []struct {
		how  string
		want codes.Code
	}{{"suspend", codes.PermissionDenied}, {"rotate", codes.Unauthenticated}, {"reissue", codes.Unauthenticated}} {
		t.Run(tt.how, func(t *testing.T) {
			e := newFleetEnv(t)
			e.merchant("M1", "S1")
			id, cred := e.registered("SN-1", "M1", "S1")
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			old := e.watch(ctx, cred, 0)
			switch tt.how {
			case "suspend":
				if _, err := e.admin.SuspendTerminal(e.adminCtx(), &pb.SuspendTerminalRequest{TerminalId: id, Reason: "stolen"}); err != nil {
					t.Fatal(err)
				}
			case "rotate":
				r, err := e.term.RotateCredential(bearer(t.Context(), cred), &pb.RotateCredentialRequest{})
				if err != nil {
					t.Fatal(err)
				}
				// The first use of the new credential revokes the old one.
				if _, err := e.term.Heartbeat(bearer(t.Context(), r.GetCredential()), &pb.HeartbeatRequest{}); err != nil {
					t.Fatal(err)
				}
			case "reissue":
				r, err := e.admin.ReissueEnrollment(e.adminCtx(), &pb.ReissueEnrollmentRequest{TerminalId: id})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := e.term.Register(t.Context(), &pb.RegisterRequest{SerialNumber: "SN-1", EnrollmentCode: r.GetEnrollmentCode()}); err != nil {
					t.Fatal(err)
				}
			}
			cmd, err := e.admin.SendCommand(e.adminCtx(), &pb.SendCommandRequest{TerminalId: id, Type: pb.CommandType_COMMAND_TYPE_UPLOAD_LOGS})
			if err != nil {
				t.Fatal(err)
			}
			e.publish(&pb.PublishConfigRequest{Scope: &pb.ConfigScope{MerchantId: "M1"}, Settings: &pb.Settings{ReceiptHeader: proto.String("after")}})
			if msg, err := old.Recv(); status.Code(err) != tt.want {
				t.Fatalf("old stream after %s: got %v, %v; want it ended with %v", tt.how, msg, err, tt.want)
			}
			// The command was not marked delivered to the ended stream.
			list, err := e.admin.ListCommands(e.adminCtx(), &pb.ListCommandsRequest{TerminalId: id})
			if err != nil || len(list.GetCommands()) != 1 {
				t.Fatalf("ListCommands: %v, %v; want the one command", list, err)
			}
			if c := list.GetCommands()[0]; c.GetCommandId() != cmd.GetCommand().GetCommandId() || c.GetState() != pb.CommandState_COMMAND_STATE_PENDING {
				t.Errorf("command after %s: %v; want %s still pending", tt.how, c, cmd.GetCommand().GetCommandId())
			}
		})
	}
}
