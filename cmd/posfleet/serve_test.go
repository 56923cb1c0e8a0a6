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
