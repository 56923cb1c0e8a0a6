package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/webhook"
)

// webhookGot is one request a webhook receiver got.
type webhookGot struct {
	id, sig string
	body    []byte
}

// newWebhookReceiver starts a local receiver that answers 204 and passes on
// every request.
func newWebhookReceiver(t *testing.T) (string, <-chan webhookGot) {
	t.Helper()
	got := make(chan webhookGot, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- webhookGot{r.Header.Get(webhook.EventIDHeader), r.Header.Get(webhook.SignatureHeader), b}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/posfleet", got
}

// nextWebhook waits for the receiver's next request.
func nextWebhook(t *testing.T, got <-chan webhookGot) webhookGot {
	t.Helper()
	select {
	case g := <-got:
		return g
	case <-time.After(15 * time.Second):
		t.Fatal("no webhook delivery within 15s")
		return webhookGot{}
	}
}

// mismatchAlert registers a terminal of a new merchant mid and has it claim
// another merchant: a merchant-mismatch alert.
func mismatchAlert(t *testing.T, cli *AdminCLI, mid, serial string) {
	t.Helper()
	_, code := provisionForSim(t, cli, mid, serial)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	anon, err := client.Dial(cli.P.Addr, client.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	reg, err := anon.Register(ctx, serial, code, &pb.DeviceInfo{Model: "A920", FirmwareVersion: "fw-1", AppVersion: "app-1"})
	if err != nil {
		t.Fatal(err)
	}
	term, err := client.Dial(cli.P.Addr, client.WithInsecure(), client.WithBearer(reg.GetCredential()))
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	if _, err := term.VerifyMerchant(ctx, "OTHERMID"); err != nil {
		t.Fatal(err)
	}
}

// secretOf returns the secret a create or rotate-secret table output ends
// with.
func secretOf(t *testing.T, out string) string {
	t.Helper()
	const label = "signing secret (shown only once): "
	i := strings.LastIndex(out, label)
	if i < 0 {
		t.Fatalf("no secret in output:\n%s", out)
	}
	return strings.TrimSpace(out[i+len(label):])
}

func TestAdminWebhookCommands(t *testing.T) {
	cli := StartAdminCLI(t)
	url, got := newWebhookReceiver(t)

	out, code := cli.Run("webhooks", "create", "--url", "ftp://example.com/x", "--events", "disk_low")
	if code == 0 || !strings.Contains(out, "url") || !strings.Contains(out, "http or https") {
		t.Errorf("create with an ftp URL: exit %d, want a refusal naming url\n%s", code, out)
	}
	out, code = cli.Run("webhooks", "create", "--url", url, "--events", "disk_low,paid")
	if code == 0 || !strings.Contains(out, "events[1]") {
		t.Errorf("create with an unknown event: exit %d, want a refusal naming events[1]\n%s", code, out)
	}

	var created pb.CreateWebhookResponse
	js := cli.Must("webhooks", "create", "--url", url, "--events", "merchant_mismatch, disk_low", "--description", "ops pager", "--json")
	if err := protojson.Unmarshal([]byte(js), &created); err != nil || !strings.HasPrefix(created.GetSecret(), "whsec_") {
		t.Fatalf("create --json: %v, want the endpoint with its secret\n%s", err, js)
	}
	id, secret := created.GetEndpoint().GetEndpointId(), created.GetSecret()
	list := cli.Must("webhooks", "list")
	cli.Expect(list, id, url, "merchant_mismatch,disk_low", "enabled")
	if strings.Contains(list, secret) || strings.Contains(cli.Must("webhooks", "list", "--json"), secret) {
		t.Fatal("webhooks list prints the secret")
	}

	mismatchAlert(t, cli, "MIDWH", "SN-WH-1")
	d := nextWebhook(t, got)
	if err := webhook.Verify(secret, d.sig, d.body, 0, time.Now()); err != nil {
		t.Fatalf("delivery does not verify with the secret from create: %v", err)
	}
	var body struct{ Type string }
	if json.Unmarshal(d.body, &body); body.Type != "merchant_mismatch" {
		t.Fatalf("delivery type %q, want merchant_mismatch", body.Type)
	}
	waitDelivered(t, cli, id, d.id)
	cli.Expect(cli.Must("webhooks", "get", "--id", id), id, "1") // delivered count

	rotated := secretOf(t, cli.Must("webhooks", "rotate-secret", "--id", id))
	if rotated == secret || !strings.HasPrefix(rotated, "whsec_") {
		t.Fatalf("rotate-secret printed %q, want a new secret", rotated)
	}
	cli.Expect(cli.Must("webhooks", "redeliver", "--id", id, "--event", d.id), "queued", d.id)
	again := nextWebhook(t, got)
	if again.id != d.id || webhook.Verify(rotated, again.sig, again.body, 0, time.Now()) != nil {
		t.Fatalf("redelivery: got %s, want %s signed with the rotated secret", again.id, d.id)
	}
	cli.Expect(cli.Must("webhooks", "update", "--id", id, "--disable", "--events", "disk_low"), "disabled", "disk_low")
	cli.Expect(cli.Must("webhooks", "update", "--id", id, "--enable"), "enabled")
	cli.Expect(cli.Must("webhooks", "delete", "--id", id), "deleted", id)
	if out, code := cli.Run("webhooks", "get", "--id", id); code == 0 {
		t.Errorf("get after delete: exit 0, want not found\n%s", out)
	}
}

// waitDelivered polls "webhooks deliveries" until the event is delivered.
func waitDelivered(t *testing.T, cli *AdminCLI, id, eventID string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(cli.Must("webhooks", "deliveries", "--id", id, "--status", "delivered"), eventID) {
		if time.Now().After(deadline) {
			t.Fatalf("webhooks deliveries never listed %s as delivered", eventID)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
