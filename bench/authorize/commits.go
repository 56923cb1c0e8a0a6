package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// commitCount is the payment engine's group commit as its metrics tell it:
// synced commits, the decisions they held and the seconds the store took
// to write them.
type commitCount struct {
	commits, decisions, seconds float64
}

// since returns the commits made after before.
func (c commitCount) since(before commitCount) commitCount {
	return commitCount{commits: c.commits - before.commits, decisions: c.decisions - before.decisions, seconds: c.seconds - before.seconds}
}

// String says how many decisions each commit held on average.
func (c commitCount) String() string {
	if c.commits == 0 {
		return "group commit: no commits seen"
	}
	return fmt.Sprintf("group commit: %.0f commits, %.1f decisions per commit, %.1f ms per commit", c.commits, c.decisions/c.commits, 1000*c.seconds/c.commits)
}

// commits reads posfleet_payment_commit_decisions (a histogram: _count is
// the commits, _sum the decisions) and posfleet_payment_commit_seconds'
// _sum from the server's /metrics. It returns
// zero when the server has no metrics listener or cannot be read: the
// figure is extra information, never a reason to fail the run.
func (s *serverProc) commits() commitCount {
	if s.metricsAddr == "" {
		return commitCount{}
	}
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + s.metricsAddr + "/metrics")
	if err != nil {
		return commitCount{}
	}
	defer resp.Body.Close()
	var c commitCount
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch name {
		case "posfleet_payment_commit_decisions_count":
			c.commits = v
		case "posfleet_payment_commit_decisions_sum":
			c.decisions = v
		case "posfleet_payment_commit_seconds_sum":
			c.seconds = v
		}
	}
	return c
}
