package webhook_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/configpush"
	"github.com/posfleet/posfleet/server/webhook"
)

// sent is the part of a delivery body the tests read.
type sent struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		TerminalID string `json:"terminal_id"`
		Message    string `json:"message"`
	} `json:"data"`
}

func decodeBody(t *testing.T, b []byte) sent {
	t.Helper()
	var s sent
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("delivery body %q: %v", b, err)
	}
	return s
}

// TestDeliversSubscribedEventsSignedInOrder: an endpoint gets exactly the
// events it subscribed to, in commit order, each signed with its secret and
// carrying the same event ID in header and body.
func TestDeliversSubscribedEventsSignedInOrder(t *testing.T) {
	e := newEnv(t, fastConfig())
	r := newReceiver(t)
	// An event committed before the endpoint exists is not sent.
	e.commit(audit.Event{Type: audit.MerchantMismatch, TerminalID: "T0000000"})
	ep, secret := e.create(r.url(), webhook.MerchantMismatch, webhook.BatchOutOfBalance, webhook.RolloutHalted)

	e.commit(audit.Event{Type: audit.MerchantMismatch, TerminalID: "T0000001", Message: "1"})
	e.commit(audit.Event{Type: audit.DiskLow, Message: "not subscribed"})
	e.commit(audit.Event{Type: audit.RolloutChanged, Message: "advanced", Attributes: map[string]string{"state": "RUNNING"}})
	e.commit(audit.Event{Type: audit.BatchOutOfBalance, TerminalID: "T0000002", Message: "2"})
	e.commit(audit.Event{Type: audit.RolloutChanged, Message: "3", Attributes: map[string]string{"state": "HALTED"}})
	e.commit(audit.Event{Type: audit.RolloutChanged, Message: "completed: not subscribed", Attributes: map[string]string{"state": "COMPLETED"}})
	e.commit(audit.Event{Type: audit.RolloutChanged, Message: "aborted by an operator: no event", Attributes: map[string]string{"state": "ABORTED"}})
	e.commit(audit.Event{Type: audit.RolloutChanged, Message: "4",
		Attributes: map[string]string{"state": "ABORTED", configpush.RolledBackByAttr: "payment_gate"}})
	e.log.Record(audit.Event{Type: audit.MerchantMismatch, TerminalID: "T0000004", Message: "5"}) // batched alert

	waitFor(t, "5 deliveries", func() bool { return r.count() >= 5 })
	time.Sleep(100 * time.Millisecond) // room for a wrong sixth one
	got := r.deliveries()
	wantTypes := []string{"merchant_mismatch", "batch_out_of_balance", "rollout_halted", "rollout_halted", "merchant_mismatch"}
	if len(got) != len(wantTypes) {
		t.Fatalf("got %d deliveries, want %d", len(got), len(wantTypes))
	}
	for i, d := range got {
		b := decodeBody(t, d.body)
		if b.Type != wantTypes[i] || d.typ != wantTypes[i] || b.Data.Message != string(rune('1'+i)) {
			t.Errorf("delivery %d: got type %q (header %q) message %q, want %q message %d", i, b.Type, d.typ, b.Data.Message, wantTypes[i], i+1)
		}
		if b.ID != d.id || !strings.HasPrefix(d.id, "evt_") {
			t.Errorf("delivery %d: body id %q, header id %q; want the same evt_ ID", i, b.ID, d.id)
		}
		if err := webhook.Verify(secret, d.sig, d.body, 0, time.Now()); err != nil {
			t.Errorf("delivery %d: signature %q does not verify: %v", i, d.sig, err)
		}
	}
	waitFor(t, "status to count 5", func() bool {
		got, _ := e.hooks.Get(t.Context(), ep.ID)
		return got.Status.Delivered == 5 && got.Status.PendingEventID == ""
	})
	if ds := e.listDeliveries(ep.ID, webhook.StatusDelivered); len(ds) != 5 || ds[0].EventID != got[4].id {
		t.Fatalf("delivered list: got %d, newest %v; want 5, newest %s", len(ds), ds, got[4].id)
	}
}

// TestReceiverDownDeliveredLater: while the receiver is down the event is
// retried and its failure visible; once it is back the event arrives, once,
// with its original ID, and the next event after it.
func TestReceiverDownDeliveredLater(t *testing.T) {
	e := newEnv(t, fastConfig())
	r := newReceiver(t)
	ep, _ := e.create(r.url()+"?token=receiver-token", webhook.MerchantMismatch)
	r.stop()
	e.commit(audit.Event{Type: audit.MerchantMismatch, Message: "first"})
	e.commit(audit.Event{Type: audit.MerchantMismatch, Message: "second"})

	var pending webhook.Endpoint
	waitFor(t, "three failed attempts", func() bool {
		pending, _ = e.hooks.Get(t.Context(), ep.ID)
		return pending.Status.ConsecutiveFailures >= 3
	})
	if pending.Status.LastError == "" || pending.Status.PendingEventID == "" {
		t.Fatalf("status while down: got %+v, want a last error and a pending event", pending.Status)
	}
	ds := e.listDeliveries(ep.ID, webhook.StatusPending)
	if len(ds) != 1 || ds[0].EventID != pending.Status.PendingEventID || ds[0].Attempts < 3 || ds[0].LastError == "" {
		t.Fatalf("pending deliveries while down: got %+v, want only the first event, with attempts and an error", ds)
	}
	if strings.Contains(ds[0].LastError, "receiver-token") {
		t.Errorf("last error %q carries the URL's query", ds[0].LastError)
	}

	r.start(t)
	waitFor(t, "both events", func() bool { return r.count() >= 2 })
	got := r.deliveries()
	if len(got) != 2 {
		t.Fatalf("got %d deliveries, want 2", len(got))
	}
	if got[0].id != pending.Status.PendingEventID || decodeBody(t, got[0].body).Data.Message != "first" ||
		decodeBody(t, got[1].body).Data.Message != "second" {
		t.Fatalf("deliveries after the receiver came back: %s then %s; want %s (first) then second", got[0].id, got[1].id, pending.Status.PendingEventID)
	}
	if got[0].attempt == "1" {
		t.Errorf("first event arrived on attempt %s, want a retry", got[0].attempt)
	}
}

// TestOrderingPerEndpoint: the next event waits for the previous one even
// when the previous is being retried; another endpoint is not held up.
func TestOrderingPerEndpoint(t *testing.T) {
	e := newEnv(t, fastConfig())
	slow, fast := newReceiver(t), newReceiver(t)
	slow.setStatus(http.StatusServiceUnavailable)
	e.create(slow.url(), webhook.MerchantMismatch)
	e.create(fast.url(), webhook.MerchantMismatch)
	for i := range 5 {
		e.commit(audit.Event{Type: audit.MerchantMismatch, Message: string(rune('a' + i))})
	}
	waitFor(t, "fast endpoint gets 5", func() bool { return fast.count() >= 5 })
	waitFor(t, "slow endpoint retries", func() bool { return slow.count() >= 3 })
	for _, d := range slow.deliveries() {
		if m := decodeBody(t, d.body).Data.Message; m != "a" {
			t.Fatalf("while the first event fails, the endpoint got %q; want only a", m)
		}
	}
	slow.setStatus(0)
	waitFor(t, "slow endpoint catches up", func() bool {
		ds := slow.deliveries()
		return decodeBody(t, ds[len(ds)-1].body).Data.Message == "e"
	})
	var order []string
	for _, d := range slow.deliveries() {
		m := decodeBody(t, d.body).Data.Message
		if len(order) == 0 || order[len(order)-1] != m {
			order = append(order, m)
		}
	}
	if strings.Join(order, "") != "abcde" {
		t.Fatalf("slow endpoint order: got %v, want a b c d e", order)
	}
}

// TestFailedAfterRetryForThenRedeliver: a delivery is given up after
// RetryFor, visibly; the endpoint moves on; an operator redelivers it with
// the same event ID.
func TestFailedAfterRetryForThenRedeliver(t *testing.T) {
	cfg := fastConfig()
	cfg.RetryFor = 150 * time.Millisecond
	e := newEnv(t, cfg)
	r := newReceiver(t)
	r.setStatus(http.StatusInternalServerError)
	ep, _ := e.create(r.url(), webhook.ConfigRejected)
	e.commit(audit.Event{Type: audit.ConfigRejected, Message: "lost"})
	waitFor(t, "the delivery to fail", func() bool {
		got, _ := e.hooks.Get(t.Context(), ep.ID)
		return got.Status.Failed == 1
	})
	failed := e.listDeliveries(ep.ID, webhook.StatusFailed)
	if len(failed) != 1 || failed[0].LastStatusCode != 500 || failed[0].Finished.IsZero() {
		t.Fatalf("failed deliveries: got %+v, want one with status 500", failed)
	}
	if _, err := e.hooks.Redeliver(t.Context(), ep.ID, "evt_1", audit.Actor{}); !errors.Is(err, webhook.ErrDeliveryNotFound) {
		t.Errorf("Redeliver of an unknown event: got %v, want ErrDeliveryNotFound", err)
	}

	r.setStatus(0)
	e.commit(audit.Event{Type: audit.ConfigRejected, Message: "next"})
	waitFor(t, "the next event", func() bool {
		ds := r.deliveries()
		return decodeBody(t, ds[len(ds)-1].body).Data.Message == "next"
	})
	if _, err := e.hooks.Redeliver(t.Context(), ep.ID, failed[0].EventID, audit.Actor{Name: "admin:test"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the redelivery", func() bool {
		ds := r.deliveries()
		return ds[len(ds)-1].id == failed[0].EventID && decodeBody(t, ds[len(ds)-1].body).Data.Message == "lost"
	})
	waitFor(t, "the redelivery recorded", func() bool {
		ds := e.listDeliveries(ep.ID, webhook.StatusDelivered)
		return len(ds) == 2 && ds[1].EventID == failed[0].EventID && ds[1].Redeliveries == 1
	})
}

// TestRestartResumesDelivery: an event committed while the endpoint's
// receiver is down is delivered after a restart, with the same ID.
func TestRestartResumesDelivery(t *testing.T) {
	e := newEnv(t, fastConfig())
	r := newReceiver(t)
	r.setStatus(http.StatusBadGateway)
	ep, secret := e.create(r.url(), webhook.DiskLow)
	e.commit(audit.Event{Type: audit.DiskLow, Message: "disk"})
	waitFor(t, "an attempt", func() bool { return r.count() >= 1 })
	first := r.deliveries()[0].id
	e.close()

	r.setStatus(0)
	e.open()
	waitFor(t, "delivery after restart", func() bool {
		return len(e.listDeliveries(ep.ID, webhook.StatusDelivered)) == 1
	})
	last := r.deliveries()[r.count()-1]
	if last.id != first {
		t.Fatalf("event ID after restart: got %s, want %s", last.id, first)
	}
	if err := webhook.Verify(secret, last.sig, last.body, 0, time.Now()); err != nil {
		t.Fatalf("signature after restart: %v", err)
	}
}

// TestRequestTimeout: a receiver that does not answer in time counts as a
// failed attempt.
func TestRequestTimeout(t *testing.T) {
	cfg := fastConfig()
	cfg.RequestTimeout = 50 * time.Millisecond
	e := newEnv(t, cfg)
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(block) })
	ep, _ := e.create(srv.URL, webhook.TerminalOffline)
	e.commit(audit.Event{Type: audit.TerminalOffline})
	waitFor(t, "a timed-out attempt", func() bool {
		got, _ := e.hooks.Get(t.Context(), ep.ID)
		return got.Status.ConsecutiveFailures >= 1
	})
	got, _ := e.hooks.Get(t.Context(), ep.ID)
	if !strings.Contains(got.Status.LastError, "Timeout") && !strings.Contains(got.Status.LastError, "deadline") {
		t.Fatalf("last error: got %q, want a timeout", got.Status.LastError)
	}
}

// TestRedirects: a redirect to another http URL is followed; one to another
// scheme is refused.
func TestRedirects(t *testing.T) {
	e := newEnv(t, fastConfig())
	r := newReceiver(t)
	mux := http.NewServeMux()
	mux.Handle("/moved", http.RedirectHandler(r.url(), http.StatusPermanentRedirect))
	mux.Handle("/ftp", http.RedirectHandler("ftp://127.0.0.1/x", http.StatusTemporaryRedirect))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	e.create(srv.URL+"/moved", webhook.MerchantMismatch)
	bad, _ := e.create(srv.URL+"/ftp", webhook.MerchantMismatch)
	e.commit(audit.Event{Type: audit.MerchantMismatch})
	waitFor(t, "redirected delivery", func() bool { return r.count() == 1 })
	waitFor(t, "refused redirect", func() bool {
		got, _ := e.hooks.Get(t.Context(), bad.ID)
		return strings.Contains(got.Status.LastError, "refused")
	})
}

// TestValidation: bad URLs and events are refused with the field named.
func TestValidation(t *testing.T) {
	e := newEnv(t, fastConfig())
	for _, tc := range []struct {
		name  string
		spec  webhook.Spec
		field string
	}{
		{"empty URL", webhook.Spec{Events: []webhook.Event{webhook.DiskLow}}, "url"},
		{"ftp", webhook.Spec{URL: "ftp://example.com/x", Events: []webhook.Event{webhook.DiskLow}}, "url"},
		{"javascript", webhook.Spec{URL: "javascript:alert(1)", Events: []webhook.Event{webhook.DiskLow}}, "url"},
		{"file", webhook.Spec{URL: "file:///etc/passwd", Events: []webhook.Event{webhook.DiskLow}}, "url"},
		{"relative", webhook.Spec{URL: "/hooks", Events: []webhook.Event{webhook.DiskLow}}, "url"},
		{"no host", webhook.Spec{URL: "http:///hooks", Events: []webhook.Event{webhook.DiskLow}}, "url"},
		{"credentials", webhook.Spec{URL: "https://user:pw@example.com/", Events: []webhook.Event{webhook.DiskLow}}, "url"},
		{"space", webhook.Spec{URL: "https://example.com/a b", Events: []webhook.Event{webhook.DiskLow}}, "url"},
		{"too long", webhook.Spec{URL: "https://example.com/" + strings.Repeat("a", webhook.MaxURLLength), Events: []webhook.Event{webhook.DiskLow}}, "url"},
		{"no events", webhook.Spec{URL: "https://example.com/"}, "events"},
		{"unknown event", webhook.Spec{URL: "https://example.com/", Events: []webhook.Event{webhook.DiskLow, "payment_made"}}, "events[1]"},
		{"long description", webhook.Spec{URL: "https://example.com/", Events: []webhook.Event{webhook.DiskLow}, Description: strings.Repeat("x", 201)}, "description"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.hooks.Create(t.Context(), tc.spec, audit.Actor{})
			var ve *webhook.ValidationError
			if !errors.As(err, &ve) || len(ve.Violations) != 1 || ve.Violations[0].Field != tc.field {
				t.Fatalf("got %v, want a ValidationError on %s", err, tc.field)
			}
		})
	}
	if got := e.hooks.List(t.Context()); len(got) != 0 {
		t.Fatalf("after refused creates: %d endpoints, want 0", len(got))
	}
	ep, _ := e.create("https://example.com/ok", webhook.DiskLow)
	bad := "gopher://x"
	if _, err := e.hooks.Update(t.Context(), ep.ID, webhook.Patch{URL: &bad}, audit.Actor{}); err == nil {
		t.Fatal("Update to a gopher URL: got nil error, want a ValidationError")
	}
}

// TestAdministration: update, rotate, disable, delete, with audit events
// that never carry the secret, and the secret shown only at create/rotate.
func TestAdministration(t *testing.T) {
	e := newEnv(t, fastConfig())
	r := newReceiver(t)
	ep, secret := e.create(r.url()+"?token=receiver-token", webhook.MerchantMismatch)
	if !strings.HasPrefix(secret, "whsec_") || len(secret) < 40 {
		t.Fatalf("secret %q, want whsec_ and 32 random bytes", secret)
	}
	ep2, secret2, err := e.hooks.RotateSecret(t.Context(), ep.ID, audit.Actor{Name: "admin:test"})
	if err != nil || secret2 == secret || ep2.SecretRotated.Before(ep.SecretRotated) {
		t.Fatalf("rotate: got %q, %v; want a new secret", secret2, err)
	}
	e.commit(audit.Event{Type: audit.MerchantMismatch})
	waitFor(t, "delivery", func() bool { return r.count() == 1 })
	d := r.deliveries()[0]
	if webhook.Verify(secret2, d.sig, d.body, 0, time.Now()) != nil || webhook.Verify(secret, d.sig, d.body, 0, time.Now()) == nil {
		t.Fatal("after rotation the delivery must verify with the new secret only")
	}

	off := true
	evs := []webhook.Event{webhook.DiskLow, webhook.DiskLow}
	up, err := e.hooks.Update(t.Context(), ep.ID, webhook.Patch{Disabled: &off, Events: evs}, audit.Actor{})
	if err != nil || !up.Disabled || len(up.Events) != 1 {
		t.Fatalf("update: got %+v, %v; want disabled with one event", up, err)
	}
	e.commit(audit.Event{Type: audit.DiskLow, Message: "while disabled"})
	time.Sleep(50 * time.Millisecond)
	if r.count() != 1 {
		t.Fatal("a disabled endpoint got a delivery")
	}
	on := false
	if _, err := e.hooks.Update(t.Context(), ep.ID, webhook.Patch{Disabled: &on}, audit.Actor{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the missed event after enabling", func() bool { return r.count() == 2 })

	if err := e.hooks.Delete(t.Context(), ep.ID, audit.Actor{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.hooks.Get(t.Context(), ep.ID); !errors.Is(err, webhook.ErrNotFound) {
		t.Fatalf("Get after delete: %v, want ErrNotFound", err)
	}
	if _, _, err := e.hooks.ListDeliveries(t.Context(), ep.ID, 0, 10, ""); !errors.Is(err, webhook.ErrNotFound) {
		t.Fatalf("ListDeliveries after delete: %v, want ErrNotFound", err)
	}
	if err := e.log.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	changes, _, err := e.log.List(t.Context(), audit.Filter{Type: audit.WebhookChanged}, 100, "")
	if err != nil || len(changes) != 5 {
		t.Fatalf("webhook audit events: got %d, %v; want 5 (create, rotate, 2 updates, delete)", len(changes), err)
	}
	for _, c := range changes {
		blob, _ := json.Marshal(c)
		if strings.Contains(string(blob), secret) || strings.Contains(string(blob), secret2) || strings.Contains(string(blob), "receiver-token") {
			t.Fatalf("audit event %s carries a secret: %s", c.Message, blob)
		}
	}
}

// TestChangedURLTriedAtOnce: after an operator points a failing endpoint at
// a working URL, the pending event goes out without waiting out the
// backoff.
func TestChangedURLTriedAtOnce(t *testing.T) {
	cfg := fastConfig()
	cfg.InitialBackoff, cfg.MaxBackoff = time.Hour, time.Hour
	e := newEnv(t, cfg)
	dead := newReceiver(t)
	dead.stop()
	ep, _ := e.create(dead.url(), webhook.DiskLow)
	e.commit(audit.Event{Type: audit.DiskLow})
	waitFor(t, "a failed attempt", func() bool {
		got, _ := e.hooks.Get(t.Context(), ep.ID)
		return got.Status.ConsecutiveFailures == 1
	})
	r := newReceiver(t)
	u := r.url()
	if _, err := e.hooks.Update(t.Context(), ep.ID, webhook.Patch{URL: &u}, audit.Actor{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery to the new URL", func() bool { return r.count() == 1 })
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  webhook.Config
		ok   bool
	}{
		{"zero takes the defaults", webhook.Config{}, true},
		{"defaults", webhook.DefaultConfig(), true},
		{"negative timeout", webhook.Config{RequestTimeout: -time.Second}, false},
		{"negative retry period", webhook.Config{RetryFor: -time.Hour}, false},
		{"max backoff below initial", webhook.Config{InitialBackoff: time.Hour, MaxBackoff: time.Minute}, false},
		{"negative endpoints", webhook.Config{MaxEndpoints: -1}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
