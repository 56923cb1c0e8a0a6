package main

import (
	"bufio"
	"errors"
	"net"
	"os/exec"
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
