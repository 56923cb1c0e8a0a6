package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCommitsReadsTheGroupCommitFromMetrics(t *testing.T) {
	const metrics = `# HELP posfleet_payment_commit_decisions Decisions made durable by one group commit of the payment engine.
# TYPE posfleet_payment_commit_decisions histogram
posfleet_payment_commit_decisions_bucket{le="1"} 3
posfleet_payment_commit_decisions_bucket{le="+Inf"} 40
posfleet_payment_commit_decisions_sum 4000
posfleet_payment_commit_decisions_count 40
posfleet_payment_commit_seconds_bucket{le="+Inf"} 40
posfleet_payment_commit_seconds_sum 2
posfleet_payment_commit_seconds_count 40
posfleet_payment_commit_decisions_total_unrelated 7
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(metrics))
	}))
	defer srv.Close()
	p := &serverProc{metricsAddr: strings.TrimPrefix(srv.URL, "http://")}

	got := p.commits()
	if want := (commitCount{commits: 40, decisions: 4000, seconds: 2}); got != want {
		t.Fatalf("commits() = %+v, want %+v", got, want)
	}
	d := got.since(commitCount{commits: 10, decisions: 1000, seconds: 0.5})
	if want := "group commit: 30 commits, 100.0 decisions per commit, 50.0 ms per commit"; d.String() != want {
		t.Errorf("since: got %q, want %q", d.String(), want)
	}
	if got := (commitCount{}).String(); got != "group commit: no commits seen" {
		t.Errorf("no commits: got %q", got)
	}
	if got := (&serverProc{}).commits(); got != (commitCount{}) {
		t.Errorf("no metrics listener: got %+v, want zero", got)
	}
}
