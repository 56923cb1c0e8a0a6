package main

import (
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
)

var tablesCheckedRe = regexp.MustCompile(`msg="tables checked" .*tables=(\d+) verified=(\d+)`)

// startAndStop starts serve on dir with extra flags, stops it with SIGTERM
// and returns how many tables its start found and verified in full.
func startAndStop(t *testing.T, dir string, extra ...string) (tables, verified int) {
	t.Helper()
	p := StartServe(t, dir, extra...)
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.Logs)
	}
	m := tablesCheckedRe.FindStringSubmatch(p.Logs.String())
	if m == nil {
		t.Fatalf("no tables checked line in the logs:\n%s", p.Logs)
	}
	tables, _ = strconv.Atoi(m[1])
	verified, _ = strconv.Atoi(m[2])
	return tables, verified
}

// A start reads in full only the tables no start verified before;
// --verify-all-tables reads them all again.
func TestServeVerifyAllTables(t *testing.T) {
	dir := t.TempDir()
	p := StartServe(t, dir) // a new database: nothing to check
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.Logs)
	}
	if ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst")); len(ssts) == 0 {
		t.Fatal("no table after a clean stop")
	}
	first, verified := startAndStop(t, dir)
	if verified == 0 || verified != first {
		t.Errorf("first restart: verified %d of %d tables, want all (none recorded yet)", verified, first)
	}
	// Each run writes a table when it stops (too few for a compaction):
	// only that one is new to the second restart.
	second, verified := startAndStop(t, dir)
	if verified != second-first {
		t.Errorf("second restart: verified %d of %d tables, want only the %d written since the first", verified, second, second-first)
	}
	if all, verified := startAndStop(t, dir, "--verify-all-tables"); verified != all || all < second {
		t.Errorf("restart with --verify-all-tables: verified %d of %d tables, want all", verified, all)
	}
}
