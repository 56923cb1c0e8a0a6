package crash_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/test/internal/workload"
)

const (
	auditRounds  = 5
	auditWorkers = 8
)

// change is an acknowledged admin change and the audit event it must have.
type change struct {
	typ pb.AuditEventType
	// key identifies the event: the merchant, merchant/store, terminal,
	// token ID or config version it names.
	key string
}

// eventKey returns the key of ev for its type, as change.key.
func eventKey(ev *pb.AuditEvent) string {
	switch ev.GetType() {
	case pb.AuditEventType_AUDIT_EVENT_TYPE_MERCHANT_CREATED:
		return ev.GetMerchantId()
	case pb.AuditEventType_AUDIT_EVENT_TYPE_STORE_CREATED:
		return ev.GetMerchantId() + "/" + ev.GetStoreId()
	case pb.AuditEventType_AUDIT_EVENT_TYPE_TERMINAL_PROVISIONED, pb.AuditEventType_AUDIT_EVENT_TYPE_TERMINAL_SUSPENDED:
		return ev.GetTerminalId()
	case pb.AuditEventType_AUDIT_EVENT_TYPE_TOKEN_CREATED:
		return ev.GetAttributes()["token_id"]
	case pb.AuditEventType_AUDIT_EVENT_TYPE_CONFIG_PUBLISHED:
		return ev.GetAttributes()["version"]
	}
	return ""
}

// TestAcknowledgedChangesKeepTheirAuditEventsAfterSIGKILL runs mixed admin
// load against the real binary, kills it with SIGKILL at a random moment in
// each of several rounds, and checks after a restart that every change a
// client was told about has its audit event.
func TestAcknowledgedChangesKeepTheirAuditEventsAfterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	bin := workload.BuildBinary(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(workload.AdminToken), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	ctx := t.Context()

	var (
		mu    sync.Mutex // guards acked
		acked []change
	)
	ack := func(c change) {
		mu.Lock()
		acked = append(acked, c)
		mu.Unlock()
	}
	// step makes one random admin change as worker w; it returns false once
	// the server is gone.
	step := func(rctx context.Context, admin *client.Client, round, w, n int, mids *[]string) bool {
		id := fmt.Sprintf("R%dW%dN%d", round, w, n)
		var err error
		switch op := rand.IntN(10); {
		case op < 3 || len(*mids) == 0:
			mid := "M" + id
			if _, err = admin.CreateMerchant(rctx, &pb.Merchant{MerchantId: mid, LegalName: mid + " Ltd", Mcc: "5411", Currency: "NZD"}); err == nil {
				ack(change{pb.AuditEventType_AUDIT_EVENT_TYPE_MERCHANT_CREATED, mid})
				if _, err = admin.CreateStore(rctx, &pb.Store{MerchantId: mid, StoreId: "S1", Name: "S1"}); err == nil {
					ack(change{pb.AuditEventType_AUDIT_EVENT_TYPE_STORE_CREATED, mid + "/S1"})
					*mids = append(*mids, mid)
				}
			}
		case op < 7:
			mid := (*mids)[rand.IntN(len(*mids))]
			var p *pb.ProvisionTerminalResponse
			if p, err = admin.ProvisionTerminal(rctx, "SN-"+id, mid, "S1", "", time.Hour); err == nil {
				tid := p.GetTerminal().GetTerminalId()
				ack(change{pb.AuditEventType_AUDIT_EVENT_TYPE_TERMINAL_PROVISIONED, tid})
				if op == 6 {
					if _, err = admin.SuspendTerminal(rctx, tid, "crash test"); err == nil {
						ack(change{pb.AuditEventType_AUDIT_EVENT_TYPE_TERMINAL_SUSPENDED, tid})
					}
				}
			}
		case op < 9:
			var tok *pb.AdminToken
			if _, tok, err = admin.CreateAdminToken(rctx, "tok-"+id, pb.Role_ROLE_AUDITOR, time.Hour); err == nil {
				ack(change{pb.AuditEventType_AUDIT_EVENT_TYPE_TOKEN_CREATED, tok.GetTokenId()})
			}
		default:
			mid := (*mids)[rand.IntN(len(*mids))]
			var resp *pb.PublishConfigResponse
			resp, err = admin.Admin().PublishConfig(rctx, &pb.PublishConfigRequest{Scope: &pb.ConfigScope{MerchantId: mid},
				Settings: &pb.Settings{ReceiptFooter: proto.String("round " + id)}})
			if err == nil {
				ack(change{pb.AuditEventType_AUDIT_EVENT_TYPE_CONFIG_PUBLISHED, fmt.Sprint(resp.GetVersion())})
			}
		}
		return err == nil
	}

	for round := range auditRounds {
		p := workload.Start(t, bin, dataDir, tokenFile)
		rctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for w := range auditWorkers {
			admin := workload.Dial(t, p.Addr, workload.AdminToken)
			wg.Go(func() {
				var mids []string
				for n := 0; rctx.Err() == nil; n++ {
					if !step(rctx, admin, round, w, n, &mids) {
						select {
						case <-p.Exited():
							return
						default: // a refusal (e.g. a rebalanced serial); go on
						}
					}
				}
			})
		}
		// Kill at a random moment, while the workers are still sending.
		delay := time.Duration(150+rand.IntN(600)) * time.Millisecond
		select {
		case <-p.Exited():
			t.Fatalf("round %d: posfleet died on its own: %v", round, p.Err())
		case <-time.After(delay):
		}
		p.Kill()
		stop()
		wg.Wait()
		mu.Lock()
		t.Logf("round %d: killed after %v; %d changes acknowledged so far", round, delay, len(acked))
		mu.Unlock()
	}

	p := workload.Start(t, bin, dataDir, tokenFile)
	admin := workload.Dial(t, p.Addr, workload.AdminToken)
	have := map[change]bool{}
	for _, typ := range []pb.AuditEventType{
		pb.AuditEventType_AUDIT_EVENT_TYPE_MERCHANT_CREATED, pb.AuditEventType_AUDIT_EVENT_TYPE_STORE_CREATED,
		pb.AuditEventType_AUDIT_EVENT_TYPE_TERMINAL_PROVISIONED, pb.AuditEventType_AUDIT_EVENT_TYPE_TERMINAL_SUSPENDED,
		pb.AuditEventType_AUDIT_EVENT_TYPE_TOKEN_CREATED, pb.AuditEventType_AUDIT_EVENT_TYPE_CONFIG_PUBLISHED,
	} {
		evs, err := admin.AuditEvents(ctx, &pb.ListAuditEventsRequest{Type: typ}, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			have[change{typ, eventKey(ev)}] = true
		}
	}
	missing := 0
	for _, c := range acked {
		if !have[c] {
			if missing++; missing <= 10 {
				t.Errorf("acknowledged %v %s has no audit event after the kills", c.typ, c.key)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged changes have no audit event", missing, len(acked))
	}
	if len(acked) < auditRounds*20 {
		t.Errorf("acknowledged changes: got %d, want at least %d for the test to mean something", len(acked), auditRounds*20)
	}
	t.Logf("%d acknowledged changes over %d kills, %d without an audit event", len(acked), auditRounds, missing)
}
