package main

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The console serves the sign-in form at the URL it logs.
func TestServeConsole(t *testing.T) {
	p := StartServe(t, t.TempDir(), "--console-listen", "127.0.0.1:0")
	if !strings.HasPrefix(p.ConsoleURL, "http://127.0.0.1:") || !strings.HasSuffix(p.ConsoleURL, "/") {
		t.Fatalf("logged console URL %q, want http://127.0.0.1:port/", p.ConsoleURL)
	}
	code, body := httpGet(t, p.ConsoleURL+"login")
	if code != http.StatusOK || !strings.Contains(body, `name="token"`) {
		t.Errorf("GET %slogin: %d, want 200 with the sign-in form", p.ConsoleURL, code)
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	if code := p.Wait(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM\n%s", code, p.Logs)
	}

	off := StartServe(t, t.TempDir(), "--console-listen", "off")
	off.Cmd.Process.Signal(syscall.SIGTERM)
	off.Wait(t)
	if strings.Contains(off.Logs.String(), "console serving") {
		t.Errorf("--console-listen off still serves the console\n%s", off.Logs)
	}
}

func TestServeConsoleRefusesPlaintextOffLoopback(t *testing.T) {
	out, code := runCLI(t, []string{"POSFLEET_CONSOLE_LISTEN=0.0.0.0:0"}, "serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir())
	if code == 0 || !strings.Contains(out, "refusing to serve the console in plaintext") {
		t.Errorf("console on 0.0.0.0 without TLS: exit %d, output %q; want a refusal", code, out)
	}
}

// Under TLS the console speaks HTTPS with the server's certificate, marks
// its cookie Secure, and reaches AdminService over the in-process
// connection, which then speaks TLS too.
func TestServeConsoleTLS(t *testing.T) {
	cert, key := writeSelfSigned(t)
	dir := t.TempDir()
	p := StartServe(t, dir, "--tls-cert", cert, "--tls-key", key, "--console-listen", "127.0.0.1:0")
	if !strings.HasPrefix(p.ConsoleURL, "https://127.0.0.1:") {
		t.Fatalf("logged console URL %q under TLS, want https://127.0.0.1:port/", p.ConsoleURL)
	}
	base := p.ConsoleURL
	token, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // the test's own self-signed certificate
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"login", strings.NewReader(url.Values{"token": {strings.TrimSpace(string(token))}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", strings.TrimSuffix(base, "/"))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-in over HTTPS: %d, want 303", resp.StatusCode)
	}
	if ck := resp.Header.Get("Set-Cookie"); !strings.Contains(ck, "Secure") {
		t.Errorf("session cookie %q under TLS: want Secure", ck)
	}
	if resp.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("no Strict-Transport-Security under TLS")
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	p.Wait(t)
}
