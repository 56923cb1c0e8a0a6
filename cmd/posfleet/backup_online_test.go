package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

var wroteRe = regexp.MustCompile(`^wrote (\S+): (\d+) bytes, sha256 ([0-9a-f]{64})\n$`)

// An online backup taken while a terminal pays in a loop holds every
// payment acknowledged before the backup started: restored into a fresh
// directory, the server answers each of them as a replay of the same
// authorization, never as a new one.
func TestOnlineBackupUnderLoadRestores(t *testing.T) {
	cli := StartAdminCLI(t)
	cli.Must("merchants", "create", "--id", "MIDBAK", "--legal-name", "Backup Ltd", "--mcc", "5411", "--currency", "NZD")
	cli.Must("stores", "create", "--merchant", "MIDBAK", "--id", "s1", "--name", "One")
	_, credential := cli.ProvisionAndRegisterCredential("MIDBAK", "s1", "SN-BAK")
	term, err := client.Dial(cli.P.Addr, client.WithInsecure(), client.WithBearer(credential))
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()

	type paid struct {
		req  *pb.AuthorizeRequest
		resp *pb.AuthorizeResponse
	}
	authorize := func(ctx context.Context, c *client.Client, req *pb.AuthorizeRequest) (*pb.AuthorizeResponse, error) {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		return c.Authorize(ctx, req)
	}
	var (
		mu   sync.Mutex
		acks []paid
	)
	ctx, stop := context.WithCancel(t.Context())
	loopDone := make(chan error, 1)
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			req := &pb.AuthorizeRequest{
				RequestId: client.NewRequestID(), MerchantId: "MIDBAK", Capture: true,
				Amount: &pb.Money{MinorUnits: 100 + int64(i%50), Currency: "NZD"},
				Card:   &pb.Card{Token: "tok_bak_" + strconv.Itoa(i), MaskedPan: "411111******1111", EntryMode: pb.EntryMode_ENTRY_MODE_CHIP},
			}
			resp, err := authorize(ctx, term, req)
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				loopDone <- err
				return
			}
			mu.Lock()
			acks = append(acks, paid{req, resp})
			mu.Unlock()
		}
		loopDone <- nil
	}()
	// Let some payments through, then back up while they continue.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(acks)
		mu.Unlock()
		if n >= 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d payments in 30s", n)
		}
	}
	mu.Lock()
	before := append([]paid(nil), acks...)
	mu.Unlock()
	file := filepath.Join(t.TempDir(), "online.bak")
	out, code := runCLI(t, nil, "backup", "--target", cli.P.Addr, "--admin-token-file", cli.TokenFile, "--out", file)
	stop()
	if err := <-loopDone; err != nil {
		t.Fatalf("payment loop: %v", err)
	}
	if code != 0 {
		t.Fatalf("online backup: exit %d\n%s", code, out)
	}
	m := wroteRe.FindStringSubmatch(out)
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if m == nil || m[1] != file || m[2] != strconv.FormatInt(st.Size(), 10) {
		t.Errorf("backup printed %q, want \"wrote %s: %d bytes, sha256 …\"", out, file, st.Size())
	}
	mu.Lock()
	t.Logf("%d payments acknowledged before the backup, %d in all", len(before), len(acks))
	mu.Unlock()

	restored := filepath.Join(t.TempDir(), "restored")
	if out, code := runCLI(t, nil, "restore", "--data-dir", restored, "--in", file); code != 0 || !strings.Contains(out, "restored "+file) {
		t.Fatalf("restore: exit %d\n%s", code, out)
	}
	p := StartServe(t, restored)
	defer func() {
		p.Cmd.Process.Signal(syscall.SIGTERM)
		p.Wait(t)
	}()
	c, err := client.Dial(p.Addr, client.WithInsecure(), client.WithBearer(credential))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	approved := 0
	for _, b := range before {
		resp, err := authorize(t.Context(), c, b.req)
		if err != nil {
			t.Fatalf("replay of %s on the restored server: %v", b.req.GetRequestId(), err)
		}
		if !resp.GetReplayed() || resp.GetAuthorizationId() != b.resp.GetAuthorizationId() || resp.GetDecision() != b.resp.GetDecision() {
			t.Errorf("request %s on the restored server: replayed %v, authorization %s %v; want a replay of %s %v",
				b.req.GetRequestId(), resp.GetReplayed(), resp.GetAuthorizationId(), resp.GetDecision(), b.resp.GetAuthorizationId(), b.resp.GetDecision())
		}
		if b.resp.GetDecision() == pb.Decision_DECISION_APPROVED {
			approved++
		}
	}
	if approved == 0 {
		t.Errorf("no approvals among the %d payments before the backup", len(before))
	}
}

// Backup streams every secret the server holds: only ADMIN tokens may call
// it, and the refused call leaves no file.
func TestOnlineBackupNeedsAdmin(t *testing.T) {
	cli := StartAdminCLI(t)
	out := cli.Must("--json", "tokens", "create", "--name", "ops", "--role", "operator")
	tok := regexp.MustCompile(`"token":\s*"([^"]+)"`).FindStringSubmatch(out)
	if tok == nil {
		t.Fatalf("no token in %s", out)
	}
	tokenFile := filepath.Join(t.TempDir(), "ops.token")
	if err := os.WriteFile(tokenFile, []byte(tok[1]), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "b.bak")
	out, code := runCLI(t, nil, "backup", "--target", cli.P.Addr, "--admin-token-file", tokenFile, "--out", file)
	if code == 0 || !strings.Contains(out, "permission denied") || !strings.Contains(out, "INSUFFICIENT_ROLE") {
		t.Errorf("backup with an OPERATOR token: exit %d, %q; want permission denied (INSUFFICIENT_ROLE)", code, out)
	}
	if _, err := os.Stat(file); err == nil {
		t.Errorf("refused backup left %s behind", file)
	}
}
