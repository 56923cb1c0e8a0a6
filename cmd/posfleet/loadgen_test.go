package main

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/posfleet/posfleet/loadgen"
)

func TestLoadgenHealthDriverReportsAndSLOExit(t *testing.T) {
	p := StartServe(t, t.TempDir())
	defer func() {
		p.Cmd.Process.Signal(syscall.SIGTERM)
		p.Wait(t)
	}()
	tests := []struct {
		name     string
		env      []string
		slo      string
		wantCode int
		wantOut  string
	}{
		{"slo met", nil, "health.p99<=10s", 0, "PASS  health.p99<=10s"},
		{"slo missed", nil, "health.p50<1us", 3, "FAIL  health.p50<1us"},
		// Environment twins fill flags that were not given.
		{"slo from env", []string{"POSFLEET_SLO=health.error_rate<1%;health.achieved_rate>=1"}, "", 0, "PASS  health.achieved_rate>=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "report")
			args := []string{"loadgen", "--driver", "health", "--target", p.Addr, "--rate", "100",
				"--duration", "1s", "--warmup", "0", "--terminals", "4", "--connections", "2",
				"--report", dir, "--quiet"}
			if tt.slo != "" {
				args = append(args, "--slo", tt.slo)
			}
			out, code := runCLI(t, tt.env, args...)
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) {
				t.Fatalf("exit %d, want %d; output lacks %q:\n%s", code, tt.wantCode, tt.wantOut, out)
			}
			res, err := loadgen.ReadResult(filepath.Join(dir, loadgen.ReportJSON))
			if err != nil {
				t.Fatal(err)
			}
			if h := res.Op(loadgen.OpHealth); h == nil || h.Count < 50 || h.Errors != 0 {
				t.Errorf("health op in report.json: got %+v, want about 100 calls without errors", h)
			}
			for _, f := range []string{loadgen.ReportHTML, loadgen.ReportHlog, loadgen.ReportText} {
				if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
					t.Errorf("%s missing or empty: %v", f, err)
				}
			}
		})
	}
}

func TestLoadgenRefusesPlaintextOffLoopback(t *testing.T) {
	out, code := runCLI(t, nil, "loadgen", "--driver", "health", "--target", "192.0.2.1:7400", "--report", t.TempDir())
	if code == 0 || !strings.Contains(out, "refusing plaintext") {
		t.Errorf("exit %d, output %q; want a refusal", code, out)
	}
	out, code = runCLI(t, nil, "loadgen", "--profile", "nope", "--report", t.TempDir())
	if code == 0 || !strings.Contains(out, "unknown profile") {
		t.Errorf("unknown profile: exit %d, output %q", code, out)
	}
}

// Ctrl-C used to end a run with "context canceled" and exit status 1. It
// now exits 130 with the partial report written and no error text.
func TestLoadgenInterruptExits130WithReport(t *testing.T) {
	p := StartServe(t, t.TempDir())
	defer func() {
		p.Cmd.Process.Signal(syscall.SIGTERM)
		p.Wait(t)
	}()
	dir := filepath.Join(t.TempDir(), "report")
	cmd := exec.Command(binPath, "loadgen", "--driver", "health", "--target", p.Addr, "--rate", "50",
		"--duration", "60s", "--warmup", "0", "--terminals", "2", "--report", dir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var logs strings.Builder
	sc := scanUntilProgress(stderr, &logs)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		logs.WriteString(sc.Text() + "\n")
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("loadgen after SIGINT: %v, want exit status 130\n%s", err, &logs)
	}
	for _, bad := range []string{"context canceled", "posfleet loadgen:"} {
		if strings.Contains(logs.String(), bad) {
			t.Errorf("stderr after SIGINT has %q:\n%s", bad, &logs)
		}
	}
	res, err := loadgen.ReadResult(filepath.Join(dir, loadgen.ReportJSON))
	if err != nil {
		t.Fatalf("partial report: %v", err)
	}
	if !res.Interrupted {
		t.Errorf("report.json: interrupted = false, want true")
	}
}

// --cleanup leaves nothing of the run listed on the server.
func TestLoadgenCleanup(t *testing.T) {
	cli := StartAdminCLI(t)
	out, code := runCLI(t, nil, "loadgen", "--target", cli.P.Addr, "--admin-token-file", cli.TokenFile,
		"--rate", "20", "--duration", "500ms", "--warmup", "0", "--terminals", "3", "--merchants", "1",
		"--no-watch", "--quiet", "--cleanup", "--report", filepath.Join(t.TempDir(), "report"))
	if code != 0 || !strings.Contains(out, "terminals_retired=3") || !strings.Contains(out, "merchants_archived=1") {
		t.Fatalf("loadgen --cleanup: exit %d\n%s", code, out)
	}
	if list := cli.Must("merchants", "list"); strings.Contains(list, "Loadgen") {
		t.Errorf("merchants list after --cleanup still shows the run's merchant:\n%s", list)
	}
}

// scanUntilProgress reads loadgen's stderr into logs up to its first
// progress line of the steady profile (the profile is running then, every
// terminal registered) and returns the scanner to read the rest with.
func scanUntilProgress(stderr io.Reader, logs *strings.Builder) *bufio.Scanner {
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		logs.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "steady") && !strings.Contains(sc.Text(), "msg=") {
			break
		}
	}
	return sc
}
