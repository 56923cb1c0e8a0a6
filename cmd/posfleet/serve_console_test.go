package main

import (
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

var consoleURLRe = regexp.MustCompile(`msg="console serving" url=(\S+)`)

func TestServeConsole(t *testing.T) {
	p := StartServe(t, t.TempDir(), "--console-listen", "127.0.0.1:0")
	m := consoleURLRe.FindStringSubmatch(p.Logs.String())
	if m == nil {
		t.Fatalf("serve did not log the console's URL\n%s", p.Logs)
	}
	code, body := httpGet(t, m[1]+"login")
	if code != http.StatusOK || !strings.Contains(body, `name="token"`) {
		t.Errorf("GET %slogin: %d, want 200 with the sign-in form", m[1], code)
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	if code := p.Wait(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM\n%s", code, p.Logs)
	}

	off := StartServe(t, t.TempDir(), "--console-listen", "off")
	if strings.Contains(off.Logs.String(), "console serving") {
		t.Errorf("--console-listen off still serves the console\n%s", off.Logs)
	}
	off.Cmd.Process.Signal(syscall.SIGTERM)
	off.Wait(t)
}

func TestServeConsoleRefusesPlaintextOffLoopback(t *testing.T) {
	out, code := runCLI(t, []string{"POSFLEET_CONSOLE_LISTEN=0.0.0.0:0"}, "serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir())
	if code == 0 || !strings.Contains(out, "refusing to serve the console in plaintext") {
		t.Errorf("console on 0.0.0.0 without TLS: exit %d, output %q; want a refusal", code, out)
	}
}
