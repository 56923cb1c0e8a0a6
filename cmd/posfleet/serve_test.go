package main

import (
	"bufio"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// serve used to bind --metrics-listen in the background and only log a
// failure, running (and later exiting 0) without the endpoint asked for.
// It must fail before it starts serving.
func TestServeFailsWhenMetricsAddressIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cmd := exec.Command(binPath, "serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(),
		"--metrics-listen", taken.Addr().String())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	started := false
	for sc := bufio.NewScanner(stderr); sc.Scan(); {
		logs.WriteString(sc.Text() + "\n")
		if addrRe.MatchString(sc.Text()) {
			started = true
			cmd.Process.Kill()
		}
	}
	err = cmd.Wait()
	if started {
		t.Fatalf("serve started without its metrics endpoint:\n%s", &logs)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(logs.String(), "--metrics-listen") {
		t.Fatalf("serve with a taken metrics address: %v, want a failure naming --metrics-listen:\n%s", err, &logs)
	}
}

// serve used to create the database and admin token before it checked its
// settings, so a bad port left a data directory behind. Every setting is now
// checked, and every address bound, before the data directory is touched.
func TestServeValidatesBeforeTouchingDisk(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"port out of range", nil, []string{"--listen", "127.0.0.1:99999"}, "--listen"},
		{"no port", nil, []string{"--listen", "127.0.0.1"}, "--listen"},
		{"port taken", nil, []string{"--listen", taken.Addr().String()}, "--listen"},
		{"metrics port taken", nil, []string{"--listen", "127.0.0.1:0", "--metrics-listen", taken.Addr().String()}, "--metrics-listen"},
		{"bad metrics address", nil, []string{"--listen", "127.0.0.1:0", "--metrics-listen", "localhost:http-metrics"}, "--metrics-listen"},
		{"TLS files missing", nil, []string{"--listen", "127.0.0.1:0", "--tls-cert", missing, "--tls-key", missing}, "TLS"},
		{"token file missing", nil, []string{"--listen", "127.0.0.1:0", "--admin-token-file", missing}, "admin token file"},
		{"bad log level", nil, []string{"--listen", "127.0.0.1:0", "--log-level", "loud"}, "--log-level"},
		{"zero grace from env", []string{"POSFLEET_SHUTDOWN_GRACE=0s"}, []string{"--listen", "127.0.0.1:0"}, "ShutdownGrace"},
		{"short token from env", []string{"POSFLEET_ADMIN_TOKEN=short"}, []string{"--listen", "127.0.0.1:0"}, "AdminToken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			out, code := runCLI(t, tc.env, append([]string{"serve", "--data-dir", dir}, tc.args...)...)
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, output %q; want a failure naming %q", code, out, tc.want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("data dir after a refused start: %v, want it not created", err)
			}
		})
	}
}

// A data directory owned by another user is refused, with the way out named.
func TestServeRefusesDataDirOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test must run as root in CI: it gives a directory to another user")
		}
		t.Skip("needs root to give a directory to another user")
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	out, code := runCLI(t, nil, "serve", "--listen", "127.0.0.1:0", "--data-dir", dir)
	if code == 0 || !strings.Contains(out, "--take-ownership") {
		t.Errorf("exit %d, output %q; want a refusal naming --take-ownership", code, out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("refused data dir holds %d entries, want none", len(entries))
	}
}

// printedSettings runs serve --print-config and returns each setting's
// value and source.
func printedSettings(t *testing.T, env []string, args ...string) (map[string][2]string, string) {
	t.Helper()
	out, code := runCLI(t, env, append([]string{"serve", "--print-config"}, args...)...)
	if code != 0 {
		t.Fatalf("serve --print-config: exit %d\n%s", code, out)
	}
	got := map[string][2]string{}
	for _, line := range strings.Split(out, "\n") {
		k, rest, ok := strings.Cut(line, ": ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		v, src, _ := strings.Cut(rest, "  # ")
		got[k] = [2]string{v, src}
	}
	return got, out
}

func TestServeConfigFilePrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "posfleet.yaml")
	if err := os.WriteFile(file, []byte("listen: 127.0.0.1:7501\nlog-level: debug\nshutdown-grace: 3s\nmax-recv-msg-size: 65536\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"POSFLEET_CONFIG=" + file, "POSFLEET_LOG_LEVEL=warn", "POSFLEET_SHUTDOWN_GRACE=4s"}
	got, out := printedSettings(t, env, "--shutdown-grace", "5s")
	for key, want := range map[string][2]string{
		"listen":            {"127.0.0.1:7501", "file"},      // file over default
		"log-level":         {"warn", "flag or environment"}, // env over file
		"shutdown-grace":    {"5s", "flag or environment"},   // flag over env and file
		"max-recv-msg-size": {"65536", "file"},
		"log-format":        {"text", "default"},
	} {
		if got[key] != want {
			t.Errorf("%s = %q, want %q\n%s", key, got[key], want, out)
		}
	}
	if _, ok := got["config"]; ok {
		t.Errorf("printed config names the config file itself:\n%s", out)
	}

	// What --print-config prints loads back as a config file.
	again := filepath.Join(t.TempDir(), "again.yaml")
	if err := os.WriteFile(again, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	reloaded, out2 := printedSettings(t, nil, "--config", again)
	for key, v := range got {
		if reloaded[key][0] != v[0] {
			t.Errorf("reloaded %s = %q, want %q\n%s", key, reloaded[key][0], v[0], out2)
		}
	}
}

func TestServeConfigFileRefusesBadInput(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"unknown key", "listen: 127.0.0.1:0\nlissten: 127.0.0.1:1\n", `unknown setting "lissten"`},
		{"file key", "config: other.yaml\n", `unknown setting "config"`},
		{"list value", "listen: [a, b]\n", "single value"},
		{"bad duration", "shutdown-grace: soon\n", "shutdown-grace"},
		{"twice", "listen: 127.0.0.1:0\nlisten: 127.0.0.1:1\n", "twice"},
		{"not a mapping", "- listen\n", "mapping"},
		{"syntax", "listen: \"open\n", "config file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "posfleet.yaml")
			if err := os.WriteFile(file, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "data")
			out, code := runCLI(t, nil, "serve", "--config", file, "--data-dir", dir)
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, output %q; want a refusal with %q", code, out, tc.want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("data dir after a refused config: %v, want it not created", err)
			}
		})
	}
}

func TestServePrintConfigRedactsSecrets(t *testing.T) {
	const secret = "pfa_do-not-print-me-0123456789"
	_, out := printedSettings(t, []string{"POSFLEET_ADMIN_TOKEN=" + secret})
	if strings.Contains(out, secret) || !strings.Contains(out, "POSFLEET_ADMIN_TOKEN (redacted)") {
		t.Errorf("print-config with a token in the environment:\n%s\nwant the token's source without its value", out)
	}
	if got := redactURL("postgres://pf:hunter2@db:5432/pf"); strings.Contains(got, "hunter2") {
		t.Errorf("redactURL kept the password: %s", got)
	}
}

// The example config shipped for packagers loads through the real loader
// and sets what it says.
func TestPackagedExampleConfigLoads(t *testing.T) {
	got, out := printedSettings(t, nil, "--config", filepath.Join("..", "..", "packaging", "posfleet.yaml"))
	if got["data-dir"] != [2]string{"/var/lib/posfleet", "file"} {
		t.Errorf("data-dir = %q, want /var/lib/posfleet from the file\n%s", got["data-dir"], out)
	}
}

// The limit flags and their environment twins reach the server's
// configuration: out-of-range values stop serve before it listens.
func TestServeLimitFlagsAreValidated(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"header list flag", []string{"--max-header-list-size", "100"}, nil, "MaxHeaderListSize 100"},
		{"header list env", nil, []string{"POSFLEET_MAX_HEADER_LIST_SIZE=200"}, "MaxHeaderListSize 200"},
		{"connections env", nil, []string{"POSFLEET_MAX_CONNECTIONS=-1"}, "connection caps"},
		{"per-peer flag", []string{"--max-connections-per-peer", "-5"}, nil, "connection caps"},
		{"idle flag", []string{"--max-connection-idle", "0s"}, nil, "connection ages"},
		{"quota scale", []string{"--quota-scale", "-1"}, nil, "--quota-scale"},
		{"webhook backoff", []string{"--webhook-max-backoff", "1s"}, nil, "MaxBackoff must be at least InitialBackoff"},
		{"webhook retry env", nil, []string{"POSFLEET_WEBHOOK_RETRY_FOR=-1h"}, "durations must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), binPath, append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir()}, tc.args...)...)
			cmd.Env = append(cmd.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || !strings.Contains(string(out), tc.want) {
				t.Fatalf("serve %v %v: %v, want a failure naming %q:\n%s", tc.args, tc.env, err, tc.want, out)
			}
		})
	}
}
