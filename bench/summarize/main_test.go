package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSummarizeShowsSLOVerdicts: the table used to say nothing about SLOs,
// so a run that missed one looked like any other in results.md.
func TestSummarizeShowsSLOVerdicts(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	health := write("health.json", `{"version":1,"achieved_rate":1000,"ops":[{"name":"txn","count":10}]}`)
	fleet := write("fleet.json", `{"version":1,"achieved_rate":50,"ops":[{"name":"txn","count":10}],"slos":[
		{"expr":"authorize.p99<=50ms","op":"authorize","metric":"p99","cmp":"<=","threshold":50,"value":12.5,"pass":true},
		{"expr":"txn.error_rate<0.1%","op":"txn","metric":"error_rate","cmp":"<","threshold":0.001,"value":0.912,"pass":false}]}`)
	var b strings.Builder
	if err := run(&b, []string{"health=" + health, "steady=" + fleet}, "", ""); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"steady SLOs: PASS `authorize.p99<=50ms` (got 12.50ms); FAIL `txn.error_rate<0.1%` (got 91.2%)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "health SLOs") {
		t.Errorf("a run without SLOs got an SLO line:\n%s", out)
	}
}
