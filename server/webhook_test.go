package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/webhook"
)

// TestWebhookRPCs: URL validation with field details, roles (AUDITOR reads,
// only ADMIN writes), the secret only at create and rotate, and a real
// merchant-mismatch alert delivered signed to a local receiver.
func TestWebhookRPCs(t *testing.T) {
	e := newFleetEnv(t)
	ctx := e.adminCtx()

	type got struct {
		sig, id string
		body    []byte
	}
	recv := make(chan got, 10)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		recv <- got{r.Header.Get(webhook.SignatureHeader), r.Header.Get(webhook.EventIDHeader), b}
	}))
	t.Cleanup(rcv.Close)

	for _, tc := range []struct {
		name   string
		req    *pb.CreateWebhookRequest
		fields []string
	}{
		{"ftp URL", &pb.CreateWebhookRequest{Url: "ftp://example.com/", Events: []string{"disk_low"}}, []string{"url"}},
		{"no URL, unknown event", &pb.CreateWebhookRequest{Events: []string{"disk_low", "nope"}}, []string{"url", "events[1]"}},
		{"no events", &pb.CreateWebhookRequest{Url: "https://example.com/"}, []string{"events"}},
	} {
		_, err := e.admin.CreateWebhook(ctx, tc.req)
		if status.Code(err) != codes.InvalidArgument || !slices.Equal(violationFields(err), tc.fields) {
			t.Errorf("%s: got %v with fields %v, want InvalidArgument on %v", tc.name, err, violationFields(err), tc.fields)
		}
	}

	created, err := e.admin.CreateWebhook(ctx, &pb.CreateWebhookRequest{Url: rcv.URL + "/hook", Events: []string{"merchant_mismatch"}, Description: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	secret, id := created.GetSecret(), created.GetEndpoint().GetEndpointId()
	if secret == "" || id == "" {
		t.Fatalf("create: got secret %q id %q, want both", secret, id)
	}

	aud, err := e.admin.CreateAdminToken(ctx, &pb.CreateAdminTokenRequest{Name: "aud", Role: pb.Role_ROLE_AUDITOR})
	if err != nil {
		t.Fatal(err)
	}
	actx := bearer(t.Context(), aud.GetToken())
	list, err := e.admin.ListWebhooks(actx, &pb.ListWebhooksRequest{})
	if err != nil || len(list.GetEndpoints()) != 1 || list.GetEndpoints()[0].GetUrl() != rcv.URL+"/hook" {
		t.Fatalf("auditor list: got %v, %v; want the endpoint", list, err)
	}
	if blob, _ := json.Marshal(list); strings.Contains(string(blob), secret) {
		t.Fatal("ListWebhooks shows the secret")
	}
	for name, call := range map[string]func() error{
		"create": func() error {
			_, err := e.admin.CreateWebhook(actx, &pb.CreateWebhookRequest{Url: "https://x.example/", Events: []string{"disk_low"}})
			return err
		},
		"rotate": func() error {
			_, err := e.admin.RotateWebhookSecret(actx, &pb.RotateWebhookSecretRequest{EndpointId: id})
			return err
		},
		"delete": func() error {
			_, err := e.admin.DeleteWebhook(actx, &pb.DeleteWebhookRequest{EndpointId: id})
			return err
		},
	} {
		if err := call(); status.Code(err) != codes.PermissionDenied {
			t.Errorf("auditor %s: got %v, want PermissionDenied", name, err)
		}
	}
	if _, err := e.admin.GetWebhook(ctx, &pb.GetWebhookRequest{EndpointId: "we_aaaaaaaaaaaaaaaa"}); status.Code(err) != codes.NotFound || reason(err) != "WEBHOOK_NOT_FOUND" {
		t.Errorf("get unknown: got %v, want NotFound WEBHOOK_NOT_FOUND", err)
	}

	// A terminal claiming another merchant raises a mismatch alert.
	e.merchant("MIDA", "s1")
	tid, cred := e.registered("SN-W1", "MIDA", "s1")
	if _, err := e.term.VerifyMerchant(bearer(t.Context(), cred), &pb.VerifyMerchantRequest{ClaimedMerchantId: "MIDB"}); err != nil {
		t.Fatal(err)
	}
	var d got
	select {
	case d = <-recv:
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery of the mismatch alert within 10s")
	}
	if err := webhook.Verify(secret, d.sig, d.body, 0, time.Now()); err != nil {
		t.Fatalf("delivery signature: %v", err)
	}
	var body struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			TerminalID string `json:"terminal_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(d.body, &body); err != nil || body.Type != "merchant_mismatch" || body.Data.TerminalID != tid || body.ID != d.id {
		t.Fatalf("delivery body %s: want a merchant_mismatch of %s with id %s", d.body, tid, d.id)
	}
	var dl *pb.ListWebhookDeliveriesResponse
	deadline := time.Now().Add(10 * time.Second)
	for {
		dl, err = e.admin.ListWebhookDeliveries(actx, &pb.ListWebhookDeliveriesRequest{EndpointId: id})
		if err != nil {
			t.Fatal(err)
		}
		if len(dl.GetDeliveries()) == 1 && dl.GetDeliveries()[0].GetStatus() == pb.WebhookDeliveryStatus_WEBHOOK_DELIVERY_STATUS_DELIVERED {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries: got %v, want one DELIVERED", dl.GetDeliveries())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if dl.GetDeliveries()[0].GetEventId() != d.id {
		t.Fatalf("listed event %s, want %s", dl.GetDeliveries()[0].GetEventId(), d.id)
	}

	rot, err := e.admin.RotateWebhookSecret(ctx, &pb.RotateWebhookSecretRequest{EndpointId: id})
	if err != nil || rot.GetSecret() == "" || rot.GetSecret() == secret {
		t.Fatalf("rotate: got %q, %v; want a new secret", rot.GetSecret(), err)
	}
	if _, err := e.admin.RedeliverWebhookEvent(ctx, &pb.RedeliverWebhookEventRequest{EndpointId: id, EventId: d.id}); err != nil {
		t.Fatal(err)
	}
	select {
	case again := <-recv:
		if again.id != d.id || webhook.Verify(rot.GetSecret(), again.sig, again.body, 0, time.Now()) != nil {
			t.Fatalf("redelivery: got %s, want %s signed with the new secret", again.id, d.id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no redelivery within 10s")
	}
	off := true
	up, err := e.admin.UpdateWebhook(ctx, &pb.UpdateWebhookRequest{EndpointId: id, Disabled: &off})
	if err != nil || !up.GetEndpoint().GetDisabled() || len(up.GetEndpoint().GetEvents()) != 1 {
		t.Fatalf("update: got %v, %v; want disabled, events kept", up, err)
	}
	if _, err := e.admin.DeleteWebhook(ctx, &pb.DeleteWebhookRequest{EndpointId: id}); err != nil {
		t.Fatal(err)
	}
}
