package server_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// get runs one GET of path against h and returns the status and body.
func get(h http.Handler, path string) (int, string) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

// waitReadyz polls /readyz until it answers want with every line of lines
// in its body, and fails the test after 10 s.
func waitReadyz(t *testing.T, h http.Handler, want int, lines ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get(h, "/readyz")
		ok := code == want
		for _, l := range lines {
			ok = ok && strings.Contains(body, l)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %q; want %d with %q", code, body, want, lines)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReadyzFollowsDiskSpace(t *testing.T) {
	storetest.RequireBadger(t, "the disk-space watch")
	var free atomic.Int64
	free.Store(8 << 30)
	cfg := server.DefaultConfig(t.TempDir())
	cfg.DiskReserve = 1 << 30
	cfg.DiskCheckInterval = 20 * time.Millisecond
	server.SetStatfs(&cfg, func() (int64, error) { return free.Load(), nil })
	e := startObsEnv(t, cfg)
	h := e.srv.OpsHandler()

	waitReadyz(t, h, http.StatusOK, "[+]serving ok", "[+]storage ok", "[+]disk ok", "[+]payments ok", "ready")
	free.Store(100 << 20)
	waitReadyz(t, h, http.StatusServiceUnavailable, "[-]disk failed: free disk space", "[+]storage ok", "[+]payments ok", "not ready")
	if code, body := get(h, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz with the disk low = %d %q, want 200 ok: liveness ignores the disk", code, body)
	}
	if got, _ := sample(scrape(t, h), "posfleet_disk_low", nil); got != 1 {
		t.Errorf("posfleet_disk_low = %v, want 1", got)
	}
	free.Store(8 << 30)
	waitReadyz(t, h, http.StatusOK, "[+]disk ok")
}

func TestReadyzFailsAfterAFailedPaymentCommit(t *testing.T) {
	f := &faults{}
	cfg := server.DefaultConfig(t.TempDir())
	server.SetCommitFault(&cfg, f.hook)
	e := startObsEnv(t, cfg)
	e.engineFails = true
	h := e.srv.OpsHandler()
	waitReadyz(t, h, http.StatusOK, "[+]payments ok")

	// The credential's first use is confirmed on disk: make it before the
	// commits fail, so that the failing commit is the payment's.
	if _, err := e.term.Heartbeat(bearer(t.Context(), e.cred), &pb.HeartbeatRequest{Status: &pb.TerminalStatus{}}); err != nil {
		t.Fatal(err)
	}
	f.set(errors.New("injected: I/O error"), nil)
	if _, err := e.pay.Authorize(bearer(t.Context(), e.cred), saleReq("ready-1", 100)); err == nil {
		t.Fatal("Authorize with failing commits: got nil, want an error")
	}
	f.set(nil, nil)
	// The engine stays stopped until restarted, even once the disk heals.
	waitReadyz(t, h, http.StatusServiceUnavailable, "[-]storage failed:", "[-]payments failed: payment engine not deciding", "[+]disk ok")
	if got, _ := sample(scrape(t, h), "posfleet_payment_engine_healthy", nil); got != 0 {
		t.Errorf("posfleet_payment_engine_healthy = %v, want 0", got)
	}
}

func TestReadyzBeforeServe(t *testing.T) {
	srv, err := server.New(server.DefaultConfig(t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	h := srv.OpsHandler()
	if code, body := get(h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]serving failed: not serving yet") {
		t.Errorf("/readyz before Serve = %d %q, want 503 not serving yet", code, body)
	}
	if code, _ := get(h, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz before Serve = %d, want 200", code)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if code, body := get(h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]storage failed") {
		t.Errorf("/readyz after Close = %d %q, want 503 with storage failed", code, body)
	}
}
