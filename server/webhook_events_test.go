package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// hookTypes starts a receiver and returns its URL and a channel of the
// event types it receives.
func hookTypes(t *testing.T) (string, <-chan string) {
	t.Helper()
	types := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body struct{ Type string }
		json.Unmarshal(b, &body)
		types <- body.Type
	}))
	t.Cleanup(srv.Close)
	return srv.URL, types
}

func nextType(t *testing.T, types <-chan string) string {
	t.Helper()
	select {
	case typ := <-types:
		return typ
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook within 10s")
		return ""
	}
}

// TestWebhookEventsFromTheirCauses: a terminal rejecting its config sends
// config_rejected and, as the rollout halts on it, rollout_halted; a disk
// falling below the reserve sends disk_low while writes are refused.
func TestWebhookEventsFromTheirCauses(t *testing.T) {
	storetest.RequireBadger(t, "the disk_low event of the disk-space watch")
	var free atomic.Int64
	free.Store(1 << 40)
	cfg := server.DefaultConfig(t.TempDir())
	cfg.AdminToken = testAdminToken
	cfg.DiskReserve = 1 << 30
	cfg.DiskCheckInterval = 20 * time.Millisecond
	server.SetStatfs(&cfg, func() (int64, error) { return free.Load(), nil })
	conn, stop := startServer(t, cfg)
	e := &fleetEnv{t: t, conn: conn, stop: stop, admin: pb.NewAdminServiceClient(conn), term: pb.NewTerminalServiceClient(conn), dir: cfg.DataDir}
	url, types := hookTypes(t)
	if _, err := e.admin.CreateWebhook(e.adminCtx(), &pb.CreateWebhookRequest{
		Url: url, Events: []string{"config_rejected", "rollout_halted", "rollout_completed", "disk_low"},
	}); err != nil {
		t.Fatal(err)
	}

	e.merchant("M1", "S1")
	_, cred := e.registered("SN-HOOK-1", "M1", "S1")
	pub, err := e.admin.PublishConfig(e.adminCtx(), &pb.PublishConfigRequest{
		Scope: &pb.ConfigScope{MerchantId: "M1"}, Settings: &pb.Settings{Extra: map[string]string{"k": "v"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.term.AckConfig(bearer(t.Context(), cred), &pb.AckConfigRequest{
		Version: pub.GetVersion(), Result: pb.ConfigApplyResult_CONFIG_APPLY_RESULT_REJECTED, Detail: "no printer",
	}); err != nil {
		t.Fatal(err)
	}
	if got := []string{nextType(t, types), nextType(t, types)}; got[0] != "config_rejected" || got[1] != "rollout_halted" {
		t.Fatalf("after a rejection: got %v, want [config_rejected rollout_halted]", got)
	}

	free.Store(1<<30 - 1)
	if got := nextType(t, types); got != "disk_low" {
		t.Fatalf("after the disk went low: got %s, want disk_low", got)
	}
	free.Store(1 << 40)
}
