// Package walkthrough runs the README's walkthrough, command for command,
// in a fresh copy of the repository: build, serve, provision, pay with the
// terminal simulator, close the batch, read the settlement report. A README
// that stops working for a newcomer fails CI.
package walkthrough

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// readmeBlock returns the lines of the sh block after marker in the README.
func readmeBlock(t *testing.T, readme, marker string) []string {
	t.Helper()
	_, after, ok := strings.Cut(readme, marker)
	if !ok {
		t.Fatalf("README has no %s block", marker)
	}
	_, body, ok := strings.Cut(after, "```sh\n")
	if !ok {
		t.Fatalf("no sh block after %s", marker)
	}
	body, _, _ = strings.Cut(body, "```")
	return strings.Split(strings.TrimSpace(body), "\n")
}

// freshCopy copies the files of the repository at root that a clone would
// have (tracked, and new ones git does not ignore) into a new directory.
func freshCopy(t *testing.T, root string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files (git is needed for this test): %v", err)
	}
	dst := filepath.Join(t.TempDir(), "posfleet")
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, name)
		fi, err := os.Lstat(src)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the working tree, or not a plain file
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// lockedBuffer collects the server's log lines while the test reads them.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) WriteString(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var enrollmentCode = regexp.MustCompile(`[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}`)

// servingAddr finds the address in the server's "serving" log line.
var servingAddr = regexp.MustCompile(`msg=serving addr=(\S+)`)

func TestREADMEWalkthrough(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	serve := readmeBlock(t, string(readme), "<!-- walkthrough:serve -->")
	use := readmeBlock(t, string(readme), "<!-- walkthrough:use -->")

	// The clone: a copy of this checkout stands in for the network.
	if !strings.HasPrefix(serve[0], "git clone ") || !strings.HasSuffix(serve[0], "&& cd posfleet") {
		t.Fatalf("walkthrough starts with %q, want a git clone and cd", serve[0])
	}
	dir := freshCopy(t, root)
	// Every flag has an environment twin: a port of the server's choosing
	// keeps the README's commands exact and the test clear of a server
	// already on 7400. (A port found free before the build could be taken
	// by the time the server listens, minutes later.)
	env := append(os.Environ(), "POSFLEET_LISTEN=127.0.0.1:0", "POSFLEET_CONSOLE_LISTEN=127.0.0.1:0")

	// First terminal: build, then the server (the block's last line).
	last := serve[len(serve)-1]
	if !strings.HasPrefix(last, "posfleet serve") {
		t.Fatalf("serve block ends with %q, want posfleet serve", last)
	}
	script := "set -euo pipefail\n" + strings.Join(serve[1:len(serve)-1], "\n") + "\nexec " + last + "\n"
	srv := exec.Command("bash", "-c", script)
	srv.Dir, srv.Env = dir, env
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	srv.Stdout = os.Stdout
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
			if m := servingAddr.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1]
			}
		}
		done <- srv.Wait()
	}()
	t.Cleanup(func() {
		if srv.ProcessState == nil {
			srv.Process.Kill()
		}
	})
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("build or serve failed: %v\n%s", err, logs.String())
	case <-time.After(5 * time.Minute):
		t.Fatalf("server not serving after 5 minutes\n%s", logs.String())
	}

	// Second terminal: the README's commands, each echoed, output kept.
	logFile := filepath.Join(t.TempDir(), "walkthrough.log")
	var b strings.Builder
	b.WriteString("set -euo pipefail\n")
	for _, line := range use {
		line = strings.ReplaceAll(line, "<ENROLLMENT CODE>", fmt.Sprintf(`"$(grep -oE '%s' %q | tail -1)"`, enrollmentCode, logFile))
		// In this shell (an export must last), output to the log.
		fmt.Fprintf(&b, "echo %q >> %q\n%s >> %q 2>&1\n", "$ "+line, logFile, line, logFile)
	}
	walk := exec.Command("bash", "-c", b.String())
	walk.Dir, walk.Env = dir, append(env, "POSFLEET_TARGET="+addr)
	out, err := walk.CombinedOutput()
	log, _ := os.ReadFile(logFile)
	if err != nil {
		t.Fatalf("walkthrough failed: %v\n%s%s\nserver:\n%s", err, out, log, logs.String())
	}
	got := string(log)
	for _, want := range []string{
		"identity_verified  yes",
		"decision          APPROVED", "00 approved", "12.50 NZD",
		"decision          DECLINED", "51 insufficient funds",
		"ACTIVE  ONLINE", // registered and paid, never a heartbeat
		"terminal  1 / 12.50 NZD", "IN BALANCE",
		"#1 CLOSED  1 / 12.50 NZD",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("walkthrough output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("walkthrough output:\n%s", got)
	}

	if !strings.Contains(logs.String(), `msg="posfleet starting" build="posfleet `) {
		t.Errorf("server did not log its build at start:\n%s", logs.String())
	}
	srv.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("server exit after Ctrl-C: %v\n%s", err, logs.String())
		}
	case <-time.After(time.Minute):
		t.Errorf("server did not stop after Ctrl-C")
	}
}
