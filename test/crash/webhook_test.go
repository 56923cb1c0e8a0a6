package crash_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/webhook"
	"github.com/posfleet/posfleet/test/internal/workload"
)

// hookReceiver is a local webhook receiver that holds the first request it
// gets (the server is killed while it waits) and accepts every later one.
type hookReceiver struct {
	held chan string // the held request's event ID
	mu   sync.Mutex  // guards holding, got
	// holding is true until the first request arrived.
	holding bool
	// got holds the accepted deliveries, in arrival order.
	got []hookDelivery
}

type hookDelivery struct {
	id, typ, sig string
	body         []byte
}

func (r *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	d := hookDelivery{req.Header.Get(webhook.EventIDHeader), req.Header.Get(webhook.EventTypeHeader), req.Header.Get(webhook.SignatureHeader), b}
	r.mu.Lock()
	if r.holding {
		r.holding = false
		r.mu.Unlock()
		r.held <- d.id
		<-req.Context().Done() // until the sender dies
		return
	}
	r.got = append(r.got, d)
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (r *hookReceiver) accepted() []hookDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookDelivery{}, r.got...)
}

// TestWebhookSurvivesSIGKILL kills the real binary while a webhook delivery
// is in flight and an out-of-balance batch close (whose audit event, the
// outbox entry, is committed with the close) has just been acknowledged.
// After a restart the receiver gets the interrupted event again with the
// same event ID, then the batch event, in order, both signed.
func TestWebhookSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	bin := workload.BuildBinary(t)
	dir := t.TempDir()
	tokenFile := workload.TokenFile(t, dir)
	dataDir := filepath.Join(dir, "data")
	ctx := t.Context()

	recv := &hookReceiver{held: make(chan string, 1), holding: true}
	srv := httptest.NewServer(recv)
	t.Cleanup(srv.Close)

	p := workload.Start(t, bin, dataDir, tokenFile)
	admin := workload.Dial(t, p.Addr, workload.AdminToken)
	created, err := admin.Admin().CreateWebhook(ctx, &pb.CreateWebhookRequest{
		Url: srv.URL + "/hooks", Events: []string{"merchant_mismatch", "batch_out_of_balance"},
	})
	if err != nil {
		t.Fatal(err)
	}
	secret := created.GetSecret()
	var h workload.History
	h.Setup(ctx, t, p.Addr, 1)
	term := workload.Dial(t, p.Addr, h.Terms[0].Cred)

	// A merchant-mismatch alert: its delivery is held by the receiver.
	if _, err := term.VerifyMerchant(ctx, "OTHER"); err != nil {
		t.Fatal(err)
	}
	var heldID string
	select {
	case heldID = <-recv.held:
	case <-time.After(30 * time.Second):
		t.Fatal("the mismatch alert was not delivered within 30s")
	}

	// An out-of-balance close, acknowledged, then SIGKILL at once.
	sale, err := term.Payment().Authorize(ctx, &pb.AuthorizeRequest{
		RequestId: "webhook-crash-sale", MerchantId: "M1", Capture: true,
		Amount: &pb.Money{MinorUnits: 1250, Currency: "NZD"},
		Card:   &pb.Card{Token: "tok-webhook-crash", MaskedPan: "411111******1111", EntryMode: pb.EntryMode_ENTRY_MODE_CHIP},
	})
	if err != nil || sale.GetDecision() != pb.Decision_DECISION_APPROVED {
		t.Fatalf("sale: %v, %v; want approved", sale, err)
	}
	closed, err := term.Payment().CloseBatch(ctx, &pb.CloseBatchRequest{
		RequestId: "webhook-crash-close", BatchNumber: sale.GetBatchNumber(), TerminalTotals: &pb.BatchTotals{},
	})
	if err != nil || closed.GetInBalance() {
		t.Fatalf("close: %v, %v; want out of balance", closed, err)
	}
	p.Kill()
	term.Close()
	admin.Close()

	p = workload.Start(t, bin, dataDir, tokenFile)
	defer p.Kill()
	deadline := time.Now().Add(30 * time.Second)
	for len(recv.accepted()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("after restart: %d deliveries accepted within 30s, want 2", len(recv.accepted()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := recv.accepted()
	if got[0].id != heldID || got[0].typ != "merchant_mismatch" {
		t.Fatalf("first delivery after restart: %s (%s), want the interrupted %s (merchant_mismatch)", got[0].id, got[0].typ, heldID)
	}
	if got[1].typ != "batch_out_of_balance" || got[1].id == heldID {
		t.Fatalf("second delivery after restart: %s (%s), want a new batch_out_of_balance event", got[1].id, got[1].typ)
	}
	for _, d := range got {
		if err := webhook.Verify(secret, d.sig, d.body, 0, time.Now()); err != nil {
			t.Errorf("delivery %s: signature: %v", d.id, err)
		}
		var body struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(d.body, &body); err != nil || body.ID != d.id {
			t.Errorf("delivery %s: body id %q (%v), want the header's", d.id, body.ID, err)
		}
	}
}
