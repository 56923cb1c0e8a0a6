package workload

import (
	"context"
	"fmt"
	"testing"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// verifier holds the clients a check calls through.
type verifier struct {
	admin *client.Client
	// terms are the paying terminals' clients, by index.
	terms []*client.Client
}

// Result is what a check found.
type Result struct {
	// Checked counts the acknowledged answers checked, by kind.
	Checked map[Kind]int
	// Lost counts the acknowledged answers that were gone or different,
	// by kind (audit events only when AuditDurable).
	Lost map[Kind]int
	// AuditMissing counts the acknowledged changes without their audit
	// event.
	AuditMissing int
	// Problems describes each loss and each request decided twice.
	Problems []string
	// Doubtful is how many requests sent without an answer were retried;
	// Committed of them had been decided before the crash.
	Doubtful, Committed int
}

// LostTotal is how many acknowledged answers were lost.
func (r Result) LostTotal() int {
	n := 0
	for _, v := range r.Lost {
		n += v
	}
	return n
}

func (r *Result) lose(k Kind, format string, args ...any) {
	r.Lost[k]++
	if len(r.Problems) < 50 {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// Check checks, against the server at addr, every answer acknowledged
// since from (a previous Mark; the zero Mark for all): payments replay with
// the same authorization ID and decision, fleet objects and config
// versions exist, audit events of acknowledged changes exist; no request
// is in the ledger twice. Authorizations left in doubt are retried: one
// already in the ledger must come back as a replay, and the retry's answer
// joins the history.
func (h *History) Check(ctx context.Context, t testing.TB, addr string, from Mark) Result {
	t.Helper()
	v := &verifier{admin: Dial(t, addr, AdminToken)}
	h.mu.Lock()
	for _, tm := range h.Terms {
		v.terms = append(v.terms, Dial(t, addr, tm.Cred))
	}
	acks := h.acks[from.acks:]
	audits := h.audit[from.audit:]
	doubt := h.doubt
	h.doubt = nil
	h.mu.Unlock()

	r := Result{Checked: map[Kind]int{}, Lost: map[Kind]int{}}
	ledger := map[string]int{} // terminal/request ID → transactions
	for _, tm := range h.Terms {
		tok := ""
		for {
			page, err := v.admin.Admin().ListTransactions(ctx, &pb.ListTransactionsRequest{TerminalId: tm.ID, PageSize: 1000, PageToken: tok})
			if err != nil {
				r.Problems = append(r.Problems, fmt.Sprintf("list transactions of %s: %v", tm.ID, err))
				break
			}
			for _, tx := range page.GetTransactions() {
				ledger[tm.ID+"/"+tx.GetRequestId()]++
			}
			if tok = page.GetNextPageToken(); tok == "" {
				break
			}
		}
	}
	for k, n := range ledger {
		if n != 1 {
			r.Problems = append(r.Problems, fmt.Sprintf("request %s is in the ledger %d times", k, n))
		}
	}

	for _, a := range acks {
		r.Checked[a.kind]++
		if err := a.check(ctx, v); err != nil {
			r.lose(a.kind, "acknowledged %s %s: %v", a.kind, a.what, err)
		}
	}

	events, err := v.admin.AuditEvents(ctx, nil, 1<<30)
	if err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("list audit events: %v", err))
	}
	seen := map[auditWant]bool{}
	for _, e := range events {
		seen[auditWant{typ: e.GetType()}] = true
		seen[auditWant{typ: e.GetType(), merchant: e.GetMerchantId()}] = true
		seen[auditWant{typ: e.GetType(), terminalID: e.GetTerminalId()}] = true
	}
	for _, w := range audits {
		r.Checked[Audit]++
		if seen[w] {
			continue
		}
		r.AuditMissing++
		if AuditDurable {
			r.lose(Audit, "audit event %v for merchant %q terminal %q is missing", w.typ, w.merchant, w.terminalID)
		}
	}

	for _, d := range doubt {
		resp, err := v.terms[d.terminal].Payment().Authorize(ctx, d.req)
		if err != nil {
			r.Problems = append(r.Problems, fmt.Sprintf("retry of %s: %v", d.req.GetRequestId(), err))
			continue
		}
		r.Doubtful++
		inLedger := ledger[h.Terms[d.terminal].ID+"/"+d.req.GetRequestId()] > 0
		switch {
		case resp.GetReplayed():
			r.Committed++
		case inLedger:
			r.Problems = append(r.Problems, fmt.Sprintf("retry of %s decided afresh although the ledger had it", d.req.GetRequestId()))
		}
		h.addAuthorization(d.terminal, d.req, resp)
	}
	return r
}

// Report logs per kind how many acknowledged answers were checked and
// lost.
func (r Result) Report(t testing.TB, prefix string) {
	t.Helper()
	s := prefix
	for _, k := range Kinds {
		s += fmt.Sprintf(" %s %d/%d lost;", k, r.Lost[k], r.Checked[k])
	}
	t.Logf("%s audit events missing %d (AuditDurable=%v); %d requests in doubt retried, %d had been committed",
		s, r.AuditMissing, AuditDurable, r.Doubtful, r.Committed)
}
