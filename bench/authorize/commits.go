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
// synced commits and the decisions they held.
type commitCount struct {
	commits, decisions float64
}

// since returns the commits made after before.
func (c commitCount) since(before commitCount) commitCount {
	return commitCount{commits: c.commits - before.commits, decisions: c.decisions - before.decisions}
}

// String says how many decisions each commit held on average.
func (c commitCount) String() string {
	if c.commits == 0 {
		return "group commit: no commits seen"
	}
	return fmt.Sprintf("group commit: %.0f commits, %.1f decisions per commit", c.commits, c.decisions/c.commits)
}

// commits reads posfleet_payment_commit_decisions (a histogram: _count is
// the commits, _sum the decisions) from the server's /metrics. It returns
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
		}
	}
	return c
}
