package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/posfleet/posfleet/client"
	"github.com/posfleet/posfleet/internal/buildinfo"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// binPath is the posfleet binary built once for the end-to-end tests.
var binPath string

func TestMain(m *testing.M) {
	// Every server the tests start (child processes inherit it) serves
	// its console on a free port, never on the default 7480, which a
	// developer's own server or a parallel test package may hold.
	os.Setenv("POSFLEET_CONSOLE_LISTEN", "127.0.0.1:0")
	dir, err := os.MkdirTemp("", "posfleet-bin")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "posfleet")
	if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic("build posfleet: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Proc is a running posfleet process.
type Proc struct {
	Cmd  *exec.Cmd
	Addr string
	// MetricsAddr and ConsoleURL are where the metrics endpoint and the
	// console listen, as logged before Addr; empty when they do not. Ask
	// for port 0 and read them here: a port found free beforehand may be
	// taken by another test by the time the server binds it.
	MetricsAddr, ConsoleURL string
	// Logs is written until the process ends: read it after Wait.
	Logs *strings.Builder
	done chan error
}

var (
	addrRe        = regexp.MustCompile(`msg=serving addr=(\S+)`)
	metricsAddrRe = regexp.MustCompile(`msg="serving metrics on [^"]*" addr=(\S+)`)
	consoleURLRe  = regexp.MustCompile(`msg="console serving" url=(\S+)`)
)

// StartServe runs "posfleet serve" on a random loopback port and waits until
// it reports its address.
func StartServe(t *testing.T, dataDir string, extra ...string) *Proc {
	t.Helper()
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir}, extra...)
	cmd := exec.Command(binPath, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{Cmd: cmd, Logs: &strings.Builder{}, done: make(chan error, 1)}
	addrc := make(chan string, 1)
	go func() {
		served := false
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.Logs.WriteString(line + "\n")
			if served {
				continue
			}
			// The other addresses are logged first; p's fields are
			// written only before Addr is sent.
			if m := metricsAddrRe.FindStringSubmatch(line); m != nil {
				p.MetricsAddr = m[1]
			}
			if m := consoleURLRe.FindStringSubmatch(line); m != nil {
				p.ConsoleURL = m[1]
			}
			if m := addrRe.FindStringSubmatch(line); m != nil {
				addrc <- m[1]
				served = true
			}
		}
		p.done <- cmd.Wait()
	}()
	select {
	case p.Addr = <-addrc:
	case err := <-p.done:
		t.Fatalf("serve exited early: %v\n%s", err, p.Logs)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("serve did not report its address\n%s", p.Logs)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})
	return p
}

// Wait waits for the process to exit and returns its exit code.
func (p *Proc) Wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-p.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(60 * time.Second):
		p.Cmd.Process.Kill()
		t.Fatalf("process did not exit\n%s", p.Logs)
		return -1
	}
}

func TestServeHealthAndSIGTERM(t *testing.T) {
	dir := t.TempDir()
	p := StartServe(t, dir)
	conn, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v; want SERVING", resp.GetStatus(), err)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0\n%s", code, p.Logs)
	}
	for _, want := range []string{"shutting down", "storage closed", "stopped cleanly"} {
		if !strings.Contains(p.Logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, p.Logs)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "admin.token")); err != nil {
		t.Errorf("bootstrap admin token not generated: %v", err)
	}
}

func runCLI(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func TestServeRefusesPlaintextOffLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0"} {
		out, code := runCLI(t, nil, "serve", "--listen", addr, "--data-dir", t.TempDir())
		if code == 0 || !strings.Contains(out, "refusing to serve plaintext") {
			t.Errorf("serve --listen %s: exit %d, output %q; want refusal", addr, code, out)
		}
	}
	// The environment twin is honoured the same way.
	out, code := runCLI(t, []string{"POSFLEET_LISTEN=0.0.0.0:0"}, "serve", "--data-dir", t.TempDir())
	if code == 0 || !strings.Contains(out, "refusing") {
		t.Errorf("POSFLEET_LISTEN=0.0.0.0:0: exit %d, output %q; want refusal", code, out)
	}
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	// The env asks for a non-loopback address, the flag for loopback: the
	// flag must win, so the server starts.
	dir := t.TempDir()
	t.Setenv("POSFLEET_LISTEN", "0.0.0.0:7400")
	p := StartServe(t, dir) // passes --listen 127.0.0.1:0
	if !strings.HasPrefix(p.Addr, "127.0.0.1:") {
		t.Fatalf("listening on %s, want the flag's loopback address", p.Addr)
	}
	p.Cmd.Process.Signal(syscall.SIGINT)
	if code := p.Wait(t); code != 0 {
		t.Fatalf("exit after SIGINT = %d, want 0", code)
	}
}

func TestVersionAndUsage(t *testing.T) {
	out, code := runCLI(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "posfleet ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("version: exit %d, %q", code, out)
	}
	out, code = runCLI(t, nil, "version", "--json")
	var info buildinfo.Info
	if err := json.Unmarshal([]byte(out), &info); code != 0 || err != nil || info.Version == "" || info.GoVersion != runtime.Version() || info.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("version --json: exit %d, %q, %v", code, out, err)
	}
	out, code = runCLI(t, nil, "frobnicate")
	if code != 2 || !strings.Contains(out, "unknown command") {
		t.Errorf("unknown command: exit %d, %q; want 2 and a message", code, out)
	}
	_, code = runCLI(t, nil, "serve", "--no-such-flag")
	if code == 0 {
		t.Errorf("bad flag accepted")
	}
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := StartServe(t, dir)
	p.Cmd.Process.Signal(syscall.SIGTERM)
	p.Wait(t)
	file := filepath.Join(t.TempDir(), "backup.bin")
	if out, code := runCLI(t, nil, "backup", "--data-dir", dir, "--out", file); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, out)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	if out, code := runCLI(t, nil, "restore", "--data-dir", restored, "--in", file); code != 0 {
		t.Fatalf("restore: exit %d: %s", code, out)
	}
	if out, code := runCLI(t, nil, "restore", "--data-dir", restored, "--in", file); code == 0 {
		t.Fatalf("restore into a non-empty dir succeeded: %s", out)
	}
}

// AdminCLI runs "posfleet admin" against a server started for one test,
// with the server's generated admin token.
type AdminCLI struct {
	t         *testing.T
	P         *Proc
	TokenFile string
}

// StartAdminCLI starts a server in a fresh data directory; it is stopped
// with SIGTERM (and must exit 0) when the test ends.
func StartAdminCLI(t *testing.T) *AdminCLI {
	t.Helper()
	dir := t.TempDir()
	p := StartServe(t, dir)
	t.Cleanup(func() {
		p.Cmd.Process.Signal(syscall.SIGTERM)
		if code := p.Wait(t); code != 0 {
			t.Errorf("server exit code after SIGTERM = %d, want 0", code)
		}
	})
	return &AdminCLI{t: t, P: p, TokenFile: filepath.Join(dir, "admin.token")}
}

// Run runs "posfleet admin --target … --admin-token-file … args…".
func (a *AdminCLI) Run(args ...string) (string, int) {
	a.t.Helper()
	return runCLI(a.t, nil, append([]string{"admin", "--target", a.P.Addr, "--admin-token-file", a.TokenFile}, args...)...)
}

// Must is Run that fails the test on a non-zero exit.
func (a *AdminCLI) Must(args ...string) string {
	a.t.Helper()
	out, code := a.Run(args...)
	if code != 0 {
		a.t.Fatalf("posfleet admin %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// Expect reports each of wants that out lacks.
func (a *AdminCLI) Expect(out string, wants ...string) {
	a.t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			a.t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// ProvisionAndRegister provisions a terminal through the CLI, registers it
// over the SDK like a device would, and returns its terminal ID and a client
// carrying its credential (closed when the test ends).
func (a *AdminCLI) ProvisionAndRegister(merchant, store, serial string) (string, *client.Client) {
	a.t.Helper()
	tid, credential := a.ProvisionAndRegisterCredential(merchant, store, serial)
	term, err := client.Dial(a.P.Addr, client.WithInsecure(), client.WithBearer(credential))
	if err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(func() { term.Close() })
	return tid, term
}

// ProvisionAndRegisterCredential is ProvisionAndRegister returning the
// terminal's credential instead of a client.
func (a *AdminCLI) ProvisionAndRegisterCredential(merchant, store, serial string) (string, string) {
	a.t.Helper()
	var prov pb.ProvisionTerminalResponse
	out := a.Must("--json", "terminals", "provision", "--serial", serial, "--merchant", merchant, "--store", store)
	if err := protojson.Unmarshal([]byte(out), &prov); err != nil {
		a.t.Fatalf("provision --json output %q: %v", out, err)
	}
	ctx, cancel := context.WithTimeout(a.t.Context(), 20*time.Second)
	defer cancel()
	anon, err := client.Dial(a.P.Addr, client.WithInsecure())
	if err != nil {
		a.t.Fatal(err)
	}
	defer anon.Close()
	reg, err := anon.Register(ctx, serial, prov.GetEnrollmentCode(), &pb.DeviceInfo{Model: "A920"})
	if err != nil {
		a.t.Fatalf("Register %s: %v", serial, err)
	}
	return prov.GetTerminalId(), reg.GetCredential()
}

// httpGet fetches url, retrying while the endpoint is still starting.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			return resp.StatusCode, string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestServeMetricsAndPprof(t *testing.T) {
	// Profiles are served only when asked for, and only next to metrics.
	out, code := runCLI(t, nil, "serve", "--data-dir", t.TempDir(), "--pprof")
	if code == 0 || !strings.Contains(out, "--pprof needs --metrics-listen") {
		t.Errorf("serve --pprof alone: exit %d, output %q; want refusal", code, out)
	}
	// Unauthenticated profiles only on loopback.
	out, code = runCLI(t, nil, "serve", "--data-dir", t.TempDir(), "--metrics-listen", "0.0.0.0:0", "--pprof")
	if code == 0 || !strings.Contains(out, "refusing --pprof on non-loopback") {
		t.Errorf("serve --pprof on 0.0.0.0: exit %d, output %q; want refusal", code, out)
	}

	plain := StartServe(t, t.TempDir(), "--metrics-listen", "127.0.0.1:0").MetricsAddr
	if code, body := httpGet(t, "http://"+plain+"/metrics"); code != http.StatusOK || !strings.Contains(body, "posfleet_") ||
		!strings.Contains(body, "grpc_server_handling_seconds_bucket{") {
		t.Errorf("/metrics = %d %q", code, body)
	}
	if code, body := httpGet(t, "http://"+plain+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
	if code, body := httpGet(t, "http://"+plain+"/readyz"); code != http.StatusOK || !strings.Contains(body, "[+]payments ok") {
		t.Errorf("/readyz = %d %q, want 200 with payments ok", code, body)
	}
	if code, _ := httpGet(t, "http://"+plain+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without --pprof = %d, want 404", code)
	}

	prof := StartServe(t, t.TempDir(), "--metrics-listen", "127.0.0.1:0", "--pprof").MetricsAddr
	if code, body := httpGet(t, "http://"+prof+"/debug/pprof/cmdline"); code != http.StatusOK || !strings.Contains(body, "serve") {
		t.Errorf("/debug/pprof/cmdline with --pprof = %d %q", code, body)
	}
}
