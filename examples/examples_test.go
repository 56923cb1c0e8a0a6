// Package examples_test runs the example terminals under examples/ against a
// real posfleet server: it builds the binary, starts it on a loopback port,
// provisions a terminal per example, runs the example to its exit, and checks
// both the exit status and what the server recorded.
//
// The examples need components outside Go: for Python, Debian's python3,
// python3-grpcio, python3-protobuf, python3-cryptography, protobuf-compiler
// and protobuf-compiler-grpc; for TypeScript, Node with npm and the
// example's node_modules (npm ci). .ci/run installs them. Without them a
// test skips with the reason, except under CI=true, where it fails.
package examples_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// missing fails the test under CI=true, where every component must be
// installed, and skips it otherwise.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...) + " (.ci/run installs it)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// requireCommand checks that a command runs successfully.
func requireCommand(t *testing.T, what string, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		missing(t, "%s: %s %s: %v\n%s", what, name, strings.Join(args, " "), err, out)
	}
}

// posfleetServer is a running posfleet serve process.
type posfleetServer struct {
	addr  string
	admin *client.Client
	logs  *lockedBuffer
	// rotatedKeyID is the signing key the last rotation made active (see
	// run).
	rotatedKeyID string
}

type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// buildPosfleet builds the posfleet binary and returns its path.
func buildPosfleet(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "posfleet")
	build := exec.Command("go", "build", "-o", bin, "./cmd/posfleet")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startServer serves a fresh data directory with bin on a free loopback
// port until the test ends.
func startServer(t *testing.T, bin string) *posfleetServer {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	tokenFile := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokenFile, []byte("examples-admin-token-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &posfleetServer{addr: addr, logs: &lockedBuffer{}}
	cmd := exec.Command(bin, "serve", "--listen", addr, "--data-dir", data, "--admin-token-file", tokenFile)
	// No operator console (where the server has one): its fixed default
	// port would collide with other servers tests start.
	cmd.Env = append(os.Environ(), "POSFLEET_CONSOLE_LISTEN=off")
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("server exit: %v\n%s", err, s.logs)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Errorf("server did not stop within 30s\n%s", s.logs)
		}
	})
	s.admin, err = client.Dial(addr, client.WithInsecure(), client.WithBearer("examples-admin-token-0123456789abcdef"), client.WithDefaultTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.admin.Close() })
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := s.admin.Health(t.Context(), "")
		if err == nil && st == 1 { // SERVING
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("server exited: %v\n%s", err, s.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not serving after a minute: %v\n%s", err, s.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

// provision creates a merchant (NZD), a store and a terminal with serial.
func (s *posfleetServer) provision(t *testing.T, merchantID, serial string) *pb.ProvisionTerminalResponse {
	t.Helper()
	ctx := t.Context()
	if _, err := s.admin.CreateMerchant(ctx, &pb.Merchant{MerchantId: merchantID, LegalName: "Example Traders Ltd", DisplayName: "Example \\ Café\nTwo", Mcc: "5411", Currency: "NZD"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.admin.CreateStore(ctx, &pb.Store{MerchantId: merchantID, StoreId: "main", Name: "Main St"}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.admin.ProvisionTerminal(ctx, serial, merchantID, "main", "example", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// example is one example terminal: how to run it.
type example struct {
	name string
	// prepare checks its components and builds it.
	prepare func(t *testing.T)
	// command runs it; settings come in the environment.
	command func() *exec.Cmd
	// vectors runs its check of the identity test vectors in path.
	vectors func(path string) *exec.Cmd
	// scenarios are the posfleet conformance scenarios it is expected to
	// pass (--scenarios).
	scenarios string
}

// run starts the example with env and, once the server has registered the
// terminal, rotates the server's signing key, queues a remote command and
// publishes a config for the terminal, as an operator would. It returns the
// example's exit error, stdout and stderr.
func (s *posfleetServer) run(t *testing.T, ex example, env []string, terminalID string, operate bool) (stdout, stderr string, err error) {
	t.Helper()
	cmd := ex.command()
	cmd.Env = append(os.Environ(), env...)
	var out, errOut lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, io.MultiWriter(&errOut, testWriter{t, ex.name})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	timeout := time.After(3 * time.Minute)
	if operate {
		ctx := t.Context()
	wait:
		for {
			term, err := s.admin.GetTerminal(ctx, terminalID)
			if err != nil {
				t.Fatal(err)
			}
			if term.GetRegisterTime() != nil {
				break
			}
			select {
			case err := <-exited:
				t.Fatalf("%s exited before registering: %v\n%s", ex.name, err, errOut.String())
			case <-timeout:
				break wait
			case <-time.After(50 * time.Millisecond):
			}
		}
		s.rotateSigningKey(t)
		if _, err := s.admin.SendCommand(ctx, terminalID, pb.CommandType_COMMAND_TYPE_UPLOAD_LOGS, nil, time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := s.admin.Admin().PublishConfig(ctx, &pb.PublishConfigRequest{
			Scope:    &pb.ConfigScope{TerminalId: terminalID},
			Settings: &pb.Settings{ReceiptHeader: ptr("Thank you for shopping"), Extra: map[string]string{"example.greeting": "kia ora"}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-exited:
		return out.String(), errOut.String(), err
	case <-timeout:
		cmd.Process.Kill()
		<-exited
		t.Fatalf("%s still running after 3 minutes\n%s", ex.name, errOut.String())
	}
	return "", "", nil
}

func ptr[T any](v T) *T { return &v }

// testWriter copies an example's log lines into the test log.
type testWriter struct {
	t    *testing.T
	name string
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s: %s", w.name, bytes.TrimRight(p, "\n"))
	return len(p), nil
}

// summary is the JSON line an example prints last.
type summary struct {
	TerminalID          string `json:"terminal_id"`
	IdentityKeyID       string `json:"identity_key_id"`
	ConfigVersion       uint64 `json:"config_version"`
	SaleRequestID       string `json:"sale_request_id"`
	SaleAuthorizationID string `json:"sale_authorization_id"`
	// LostRequestRequestID is a sale the server never saw until after
	// its reversal; LostResponseRequestID one whose approval was lost.
	LostRequestRequestID  string   `json:"lost_request_request_id"`
	LostResponseRequestID string   `json:"lost_response_request_id"`
	RefundID              string   `json:"refund_id"`
	BatchNumber           uint64   `json:"batch_number"`
	NextBatchNumber       uint64   `json:"next_batch_number"`
	CommandsAcked         []string `json:"commands_acked"`
	// IdentityKeyIDs are the keys of the identities the example verified,
	// in order; TrustedKeyIDs the keys its pin led to, sorted.
	IdentityKeyIDs []string `json:"identity_key_ids"`
	TrustedKeyIDs  []string `json:"trusted_key_ids"`
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// checkRecorded compares an example's summary with what the server holds.
func (s *posfleetServer) checkRecorded(t *testing.T, sum summary, terminalID string) {
	t.Helper()
	ctx := t.Context()
	if sum.TerminalID != terminalID {
		t.Errorf("example registered as %q, want %q", sum.TerminalID, terminalID)
	}
	term, err := s.admin.GetTerminal(ctx, terminalID)
	if err != nil {
		t.Fatal(err)
	}
	if got := term.GetLastStatus().GetConfigVersion(); got != sum.ConfigVersion || got == 0 {
		t.Errorf("server's last heartbeat reports config %d, example applied %d", got, sum.ConfigVersion)
	}
	if got := term.GetDesiredConfigVersion(); got != sum.ConfigVersion {
		t.Errorf("server wants config %d, example applied %d", got, sum.ConfigVersion)
	}
	cmds, err := s.admin.AllCommands(ctx, terminalID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) != 1 || cmds[0].GetState() != pb.CommandState_COMMAND_STATE_SUCCEEDED {
		t.Errorf("commands on the server: %v, want one SUCCEEDED", cmds)
	} else if len(sum.CommandsAcked) != 1 || sum.CommandsAcked[0] != cmds[0].GetCommandId() {
		t.Errorf("example acked %v, want [%s]", sum.CommandsAcked, cmds[0].GetCommandId())
	}
	resp, err := s.admin.Admin().ListTransactions(ctx, &pb.ListTransactionsRequest{TerminalId: terminalID, PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	var sales, refunds, tombstoned, reversed int
	for _, tx := range resp.GetTransactions() {
		switch {
		case tx.GetRequestId() == sum.SaleRequestID:
			sales++
			if tx.GetTransactionId() != sum.SaleAuthorizationID || tx.GetDecision() != pb.Decision_DECISION_APPROVED ||
				tx.GetRefundedAmount().GetMinorUnits() != 500 || tx.GetBatchNumber() != sum.BatchNumber {
				t.Errorf("sale on the server: %v, want %s approved in batch %d with 5.00 refunded", tx, sum.SaleAuthorizationID, sum.BatchNumber)
			}
		case tx.GetTransactionId() == sum.RefundID:
			refunds++
		case tx.GetRequestId() == sum.LostRequestRequestID:
			tombstoned++
			if tx.GetDecision() != pb.Decision_DECISION_DECLINED || tx.GetResponseCode() != "12" {
				t.Errorf("sale that arrived after its reversal: %v, want declined 12", tx)
			}
		case tx.GetRequestId() == sum.LostResponseRequestID:
			reversed++
			if tx.GetDecision() != pb.Decision_DECISION_APPROVED || !tx.GetReversed() ||
				tx.GetReversalReason() != pb.ReversalReason_REVERSAL_REASON_TIMEOUT {
				t.Errorf("sale whose answer was lost: %v, want approved and reversed for TIMEOUT", tx)
			}
		}
	}
	if sales != 1 || refunds != 1 || tombstoned != 1 || reversed != 1 {
		t.Errorf("server holds %d sales, %d refunds, %d tombstoned and %d reversed sales of the example, want 1 of each:\n%v",
			sales, refunds, tombstoned, reversed, resp.GetTransactions())
	}
	if sum.NextBatchNumber != sum.BatchNumber+1 {
		t.Errorf("batch %d closed into %d, want %d", sum.BatchNumber, sum.NextBatchNumber, sum.BatchNumber+1)
	}
}

// TestExamples runs every example terminal against one server: once with
// the fingerprint of the server's signing key pinned, as provisioning shows
// it, while the key is rotated (it must complete, verifying identities of
// the new key through the old one's endorsement, and the server must hold
// what it did), and once with another fingerprint pinned (it must refuse
// the server); then under posfleet conformance, which must pass it.
func TestExamples(t *testing.T) {
	examples := []example{pythonExample(), typescriptExample()}
	bin := buildPosfleet(t)
	s := startServer(t, bin)
	// A key retired before any example is provisioned: one that endorsed
	// the pinned key, which no example may trust.
	s.rotateSigningKey(t)
	for i, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			ex.prepare(t)
			merchant := fmt.Sprintf("EXAMPLE%02d", i)
			prov := s.provision(t, merchant, "SN-"+merchant)
			env := []string{
				"POSFLEET_TARGET=" + s.addr,
				"POSFLEET_SERIAL=SN-" + merchant,
				"POSFLEET_ENROLLMENT_CODE=" + prov.GetEnrollmentCode(),
				"POSFLEET_MERCHANT_ID=" + merchant,
				"POSFLEET_CURRENCY=NZD",
				"POSFLEET_CONFIG_WAIT=60",
			}
			pinned := prov.GetSigningKeyId()
			stdout, stderr, err := s.run(t, ex, append(env, "POSFLEET_SIGNING_KEY_FINGERPRINT="+prov.GetSigningKeyFingerprint()), prov.GetTerminalId(), true)
			if err != nil {
				t.Fatalf("%s failed: %v\n%s\nserver:\n%s", ex.name, err, stderr, s.logs)
			}
			var sum summary
			if err := json.Unmarshal([]byte(lastLine(stdout)), &sum); err != nil {
				t.Fatalf("%s summary %q: %v", ex.name, lastLine(stdout), err)
			}
			s.checkRecorded(t, sum, prov.GetTerminalId())
			checkIdentities(t, sum, pinned, s.rotatedKeyID)

			// A server whose key set does not hold the pinned key is
			// refused right after registration.
			other := merchant + "X"
			prov = s.provision(t, other, "SN-"+other)
			wrong, _, _ := ed25519.GenerateKey(nil)
			env = []string{
				"POSFLEET_TARGET=" + s.addr,
				"POSFLEET_SERIAL=SN-" + other,
				"POSFLEET_ENROLLMENT_CODE=" + prov.GetEnrollmentCode(),
				"POSFLEET_MERCHANT_ID=" + other,
				"POSFLEET_SIGNING_KEY_FINGERPRINT=" + client.Fingerprint(wrong),
			}
			_, stderr, err = s.run(t, ex, env, prov.GetTerminalId(), false)
			if err == nil {
				t.Fatalf("%s trusted an identity not signed by the pinned key", ex.name)
			}
			if !strings.Contains(stderr, "does not hold the pinned signing key") {
				t.Errorf("%s failed for another reason than the key:\n%s", ex.name, stderr)
			}
			resp, err := s.admin.Admin().ListTransactions(t.Context(), &pb.ListTransactionsRequest{TerminalId: prov.GetTerminalId()})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(resp.GetTransactions()); n != 0 {
				t.Errorf("terminal with the wrong key pinned made %d transactions, want 0", n)
			}

			// The conformance kit plays its faults against the example,
			// which leaves the simulating of lost answers to it.
			kit := exec.Command(bin, append([]string{"conformance", "--listen", "127.0.0.1:0", "--timeout", "2m", "--scenarios", ex.scenarios, "--"}, ex.command().Args...)...)
			kit.Env = append(os.Environ(), "POSFLEET_SIMULATE_LOSS=false", "POSFLEET_CONFIG_WAIT=60")
			out, err := kit.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "RESULT: PASS") {
				t.Errorf("%s under posfleet conformance: %v\n%s", ex.name, err, out)
			} else {
				t.Logf("%s under posfleet conformance:\n%s", ex.name, out)
			}
		})
	}
}

// pythonExample is examples/python: stubs generated by generate.sh, run by
// Debian's python3.
func pythonExample() example {
	const python = "/usr/bin/python3"
	return example{
		name: "python",
		prepare: func(t *testing.T) {
			requireCommand(t, "Debian python3 with grpcio, protobuf and cryptography", python, "-c", "import grpc, google.protobuf, cryptography")
			requireCommand(t, "protoc (protobuf-compiler)", "protoc", "--version")
			if _, err := exec.LookPath("grpc_python_plugin"); err != nil {
				missing(t, "grpc_python_plugin (protobuf-compiler-grpc): %v", err)
			}
			gen := exec.Command("bash", "python/generate.sh")
			if out, err := gen.CombinedOutput(); err != nil {
				t.Fatalf("python/generate.sh: %v\n%s", err, out)
			}
		},
		command:   func() *exec.Cmd { return exec.Command(python, "python/terminal.py") },
		vectors:   func(path string) *exec.Cmd { return exec.Command(python, "python/vectors.py", path) },
		scenarios: "all",
	}
}

// typescriptExample is examples/typescript: compiled with the tsc of its
// node_modules (npm ci), run by Node.
func typescriptExample() example {
	return example{
		name: "typescript",
		prepare: func(t *testing.T) {
			requireCommand(t, "Node.js", "node", "--version")
			if _, err := os.Stat("typescript/node_modules/.bin/tsc"); err != nil {
				missing(t, "typescript/node_modules (run npm ci in examples/typescript): %v", err)
			}
			build := exec.Command("node_modules/.bin/tsc", "-p", ".")
			build.Dir = "typescript"
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("tsc: %v\n%s", err, out)
			}
		},
		command:   func() *exec.Cmd { return exec.Command("node", "typescript/dist/terminal.js") },
		vectors:   func(path string) *exec.Cmd { return exec.Command("node", "typescript/dist/vectors.js", path) },
		scenarios: "all",
	}
}
