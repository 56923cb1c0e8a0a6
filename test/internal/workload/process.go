// Package workload drives a real posfleet server through every kind of
// state it keeps — approvals, declines, reversals, refunds, batch closes,
// merchants, stores, provisioned, registered and suspended terminals,
// config publishes and their audit events — records every answer the
// server acknowledged, and checks after a restart that each of them is
// still there exactly. The crash and power-loss tests share it.
package workload

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posfleet/posfleet/client"
)

// AdminToken is the bootstrap admin token the servers are started with.
const AdminToken = "pfa_workload-test-admin-token-0123456789"

// BuildBinary builds cmd/posfleet with the given build tags into a
// temporary directory.
func BuildBinary(t testing.TB, tags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "posfleet")
	args := []string{"build", "-o", bin}
	for _, tag := range tags {
		args = append(args, "-tags", tag)
	}
	args = append(args, "github.com/posfleet/posfleet/cmd/posfleet")
	if out, err := exec.CommandContext(t.Context(), "go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TokenFile writes AdminToken into a file in dir and returns its path.
func TokenFile(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(p, []byte(AdminToken), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Process is a running posfleet serve.
type Process struct {
	cmd *exec.Cmd
	// Addr is the address it serves on.
	Addr string
	// exited closes when the process has exited; err is Wait's result.
	exited chan struct{}
	err    error
	once   sync.Once
}

var reServing = regexp.MustCompile(`msg=serving addr=(\S+)`)

// Start runs bin serve on dataDir and waits until it serves. Per-credential
// quotas are off: the workloads drive a few credentials far above a real
// terminal's rate to reach the storage faults they are about.
func Start(t testing.TB, bin, dataDir, tokenFile string) *Process {
	t.Helper()
	p, err := TryStart(t, bin, dataDir, tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TryStart runs bin serve on dataDir and waits until it serves, or returns
// why it did not, with the end of its log.
func TryStart(t testing.TB, bin, dataDir, tokenFile string) (*Process, error) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--console-listen", "off", "--data-dir", dataDir,
		"--admin-token-file", tokenFile, "--log-level", "info", "--quota-scale", "0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	t.Cleanup(p.Kill)
	addrc := make(chan string, 1)
	var logMu sync.Mutex // guards last
	var last []string    // the last lines of the log, for a failure message
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			last = append(last, sc.Text())
			if len(last) > 20 {
				last = last[1:]
			}
			logMu.Unlock()
			if m := reServing.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		<-scanned
		p.err = cmd.Wait()
		close(p.exited)
	}()
	select {
	case p.Addr = <-addrc:
		return p, nil
	case <-p.exited:
		logMu.Lock()
		defer logMu.Unlock()
		return nil, fmt.Errorf("posfleet exited before serving: %v\n%s", p.err, strings.Join(last, "\n"))
	case <-time.After(60 * time.Second):
		p.Kill()
		return nil, errors.New("posfleet did not start serving within 60s")
	}
}

// Kill sends SIGKILL and waits for the process to go.
func (p *Process) Kill() {
	p.once.Do(func() { p.cmd.Process.Signal(syscall.SIGKILL) })
	<-p.exited
}

// Exited closes when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is the process's exit error, once Exited is closed.
func (p *Process) Err() error { return p.err }

// Dial connects to addr with secret as the bearer credential.
func Dial(t testing.TB, addr, secret string) *client.Client {
	t.Helper()
	c, err := client.Dial(addr, client.WithInsecure(), client.WithBearer(secret), client.WithDefaultTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Seed returns the seed in the environment variable env, or a new one, and
// logs it so that a failing run can be repeated.
func Seed(t testing.TB, env string) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(env); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s: %v", env, err)
		}
	}
	t.Logf("seed %d (repeat with %s=%d)", seed, env, seed)
	return seed
}
