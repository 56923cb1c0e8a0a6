package payment_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"
	_ "time/tzdata" // Africa/Cairo without relying on the host's zoneinfo

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/payment"
)

var reAuthCode = regexp.MustCompile(`^[A-Z0-9]{6}$`)

func TestAuthorizeResponseCodes(t *testing.T) {
	v := newEnv(t)
	tests := []struct {
		name   string
		policy func(*payment.Policy)
		req    func(*payment.AuthorizeRequest)
		// before runs first on the same terminal, e.g. to use up a limit.
		before func(v *env, terminal string)
		want   string
	}{
		{name: "approved sale", want: "00"},
		{name: "approved pre-auth", req: func(r *payment.AuthorizeRequest) { r.Capture = false }, want: "00"},
		{name: "claimed merchant is not the binding", req: func(r *payment.AuthorizeRequest) { r.MerchantID = "M2" }, want: "03"},
		{
			name: "15-digit MID embeds another MCC",
			policy: func(p *payment.Policy) {
				p.MerchantID, p.MerchantMCC = "898330158120001", "5411" // embedded MCC 5812
			},
			req:  func(r *payment.AuthorizeRequest) { r.MerchantID = "898330158120001" },
			want: "03",
		},
		{
			name: "15-digit MID embeds the merchant MCC",
			policy: func(p *payment.Policy) {
				p.MerchantID, p.MerchantMCC = "898330154110001", "5411"
			},
			req:  func(r *payment.AuthorizeRequest) { r.MerchantID = "898330154110001" },
			want: "00",
		},
		{name: "zero amount", req: func(r *payment.AuthorizeRequest) { r.Amount.MinorUnits = 0 }, want: "13"},
		{name: "negative amount", req: func(r *payment.AuthorizeRequest) { r.Amount.MinorUnits = -5 }, want: "13"},
		{name: "amount beyond 12 digits", req: func(r *payment.AuthorizeRequest) { r.Amount.MinorUnits = payment.MaxAmount + 1 }, want: "13"},
		{name: "foreign currency", req: func(r *payment.AuthorizeRequest) { r.Amount.Currency = "USD" }, want: "13"},
		{name: "suspended terminal", policy: func(p *payment.Policy) { p.Suspended = true }, want: "57"},
		{
			name:   "entry mode not accepted",
			policy: func(p *payment.Policy) { p.AcceptedEntryModes = []payment.EntryMode{payment.EntryModeContactless} },
			want:   "12",
		},
		{
			name:   "entry mode accepted",
			policy: func(p *payment.Policy) { p.AcceptedEntryModes = []payment.EntryMode{payment.EntryModeChip} },
			want:   "00",
		},
		{name: "over per-transaction limit", policy: func(p *payment.Policy) { p.PerTransactionLimit = payment.LimitOf(999) }, want: "61"},
		{name: "at per-transaction limit", policy: func(p *payment.Policy) { p.PerTransactionLimit = payment.LimitOf(1000) }, want: "00"},
		{name: "per-transaction limit of zero forbids", policy: func(p *payment.Policy) { p.PerTransactionLimit = payment.LimitOf(0) }, want: "61"},
		{name: "daily limit of zero forbids", policy: func(p *payment.Policy) { p.DailyLimit = payment.LimitOf(0) }, want: "61"},
		{
			name:   "over daily limit",
			policy: func(p *payment.Policy) { p.DailyLimit = payment.LimitOf(1500) },
			before: func(v *env, term string) { mustCode(t, v.authorize(sale(term, "pre-1", 600)), "00") },
			want:   "61",
		},
		{
			name:   "daily limit counts pre-auths",
			policy: func(p *payment.Policy) { p.DailyLimit = payment.LimitOf(1500) },
			before: func(v *env, term string) {
				r := sale(term, "pre-1", 600)
				r.Capture = false
				mustCode(t, v.authorize(r), "00")
			},
			want: "61",
		},
		{
			name:   "daily limit less reversals",
			policy: func(p *payment.Policy) { p.DailyLimit = payment.LimitOf(1500) },
			before: func(v *env, term string) {
				mustCode(t, v.authorize(sale(term, "pre-1", 600)), "00")
				if got := v.reverse(term, "rev-1", "pre-1").Status; got != payment.ReverseStatusReversed {
					t.Fatalf("reverse: got %v, want REVERSED", got)
				}
			},
			want: "00",
		},
		{
			name:   "declines do not count toward the daily limit",
			policy: func(p *payment.Policy) { p.DailyLimit = payment.LimitOf(1500) },
			before: func(v *env, term string) {
				r := sale(term, "pre-1", 600)
				r.Card.Token = "tok_test_nsf"
				mustCode(t, v.authorize(r), "51")
			},
			want: "00",
		},
		{
			name:   "card velocity",
			policy: func(p *payment.Policy) { p.VelocityLimit, p.VelocityWindow = 2, time.Hour },
			req:    func(r *payment.AuthorizeRequest) { r.Card.Token = "tok_same" },
			before: func(v *env, term string) {
				for i := range 2 {
					r := sale(term, fmt.Sprint("pre-", i), 100)
					r.Card.Token = "tok_same"
					mustCode(t, v.authorize(r), "00")
				}
			},
			want: "65",
		},
		{
			name:   "velocity counts the same card only",
			policy: func(p *payment.Policy) { p.VelocityLimit, p.VelocityWindow = 2, time.Hour },
			before: func(v *env, term string) {
				for i := range 2 {
					r := sale(term, fmt.Sprint("pre-", i), 100)
					r.Card.Token = "tok_other"
					mustCode(t, v.authorize(r), "00")
				}
			},
			want: "00",
		},
		{
			name:   "velocity window passed",
			policy: func(p *payment.Policy) { p.VelocityLimit, p.VelocityWindow = 2, time.Hour },
			req:    func(r *payment.AuthorizeRequest) { r.Card.Token = "tok_same" },
			before: func(v *env, term string) {
				for i := range 2 {
					r := sale(term, fmt.Sprint("pre-", i), 100)
					r.Card.Token = "tok_same"
					mustCode(t, v.authorize(r), "00")
				}
				v.clock.Advance(time.Hour + time.Second)
			},
			want: "00",
		},
		{
			name: "reused request ID with other content",
			before: func(v *env, term string) {
				mustCode(t, v.authorize(sale(term, "req", 999)), "00")
			},
			want: "94",
		},
		{
			name: "original after its reversal",
			before: func(v *env, term string) {
				if got := v.reverse(term, "rev-early", "req").Status; got != payment.ReverseStatusOriginalNotFound {
					t.Fatalf("early reverse: got %v, want ORIGINAL_NOT_FOUND", got)
				}
			},
			want: "12",
		},
		{name: "issuer: do not honour", req: func(r *payment.AuthorizeRequest) { r.Card.Token = "tok_test_decline" }, want: "05"},
		{name: "issuer: invalid card", req: func(r *payment.AuthorizeRequest) { r.Card.Token = "tok_test_invalid" }, want: "14"},
		{name: "issuer: insufficient funds", req: func(r *payment.AuthorizeRequest) { r.Card.Token = "tok_test_nsf_0042" }, want: "51"},
		{name: "issuer: expired card", req: func(r *payment.AuthorizeRequest) { r.Card.Token = "tok_test_expired" }, want: "54"},
		{name: "issuer: system error", req: func(r *payment.AuthorizeRequest) { r.Card.Token = "tok_test_system_error" }, want: "96"},
		{name: "issuer: other test tokens approve", req: func(r *payment.AuthorizeRequest) { r.Card.Token = "tok_test_nsfx" }, want: "00"},
		{
			name:   "suspension wins over limits",
			policy: func(p *payment.Policy) { p.Suspended, p.PerTransactionLimit = true, payment.LimitOf(1) },
			want:   "57",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			term := fmt.Sprintf("TC%06d", i)
			v.dir.update(term, func(p *payment.Policy) {
				if tt.policy != nil {
					tt.policy(p)
				}
			})
			if tt.before != nil {
				tt.before(v, term)
			}
			req := sale(term, "req", 1000)
			req.MerchantID = v.policy(term).MerchantID
			if tt.req != nil {
				tt.req(&req)
			}
			res := v.authorize(req)
			if res.ResponseCode != tt.want {
				t.Fatalf("response code: got %s (%s), want %s", res.ResponseCode, res.Message, tt.want)
			}
			wantDecision := payment.DecisionDeclined
			if tt.want == "00" {
				wantDecision = payment.DecisionApproved
			}
			if res.Decision != wantDecision {
				t.Errorf("decision: got %v, want %v", res.Decision, wantDecision)
			}
			if tt.want == "00" && !reAuthCode.MatchString(res.AuthCode) {
				t.Errorf("auth code: got %q, want 6 characters of A-Z0-9", res.AuthCode)
			}
			if tt.want != "00" && res.AuthCode != "" {
				t.Errorf("auth code of a decline: got %q, want none", res.AuthCode)
			}
			if res.AuthorizationID == "" || res.Message == "" || res.BatchNumber != 1 || res.Replayed || res.DecisionTime.IsZero() {
				t.Errorf("result: got %+v, want an ID, a message, batch 1, not replayed, a decision time", res)
			}
			// The ledger holds the decision as answered.
			txs := v.transactions(payment.TxFilter{TerminalID: term})
			var found bool
			for _, tx := range txs {
				if tx.ID == res.AuthorizationID {
					found = true
					if tx.Code != res.ResponseCode || tx.AuthCode != res.AuthCode || tx.Decision != res.Decision {
						t.Errorf("ledger: got %s/%s/%v, want %s/%s/%v", tx.Code, tx.AuthCode, tx.Decision, res.ResponseCode, res.AuthCode, res.Decision)
					}
				}
			}
			if !found {
				t.Errorf("ledger: authorization %s not listed", res.AuthorizationID)
			}
		})
	}
}

func (v *env) policy(term string) payment.Policy {
	p, err := v.dir.Policy(term)
	if err != nil {
		v.t.Fatal(err)
	}
	return p
}

func mustCode(t *testing.T, res payment.AuthorizeResult, want string) {
	t.Helper()
	if res.ResponseCode != want {
		t.Fatalf("setup: got response code %s (%s), want %s", res.ResponseCode, res.Message, want)
	}
}

func TestMerchantMismatchIsAudited(t *testing.T) {
	v := newEnv(t)
	req := sale(term1, "jump-1", 500)
	req.MerchantID = "M999"
	res := v.authorize(req)
	if res.ResponseCode != "03" {
		t.Fatalf("got %s, want 03", res.ResponseCode)
	}
	if err := v.audit.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	events, _, err := v.audit.List(t.Context(), audit.Filter{Type: audit.MerchantMismatch}, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 {
		t.Fatalf("merchant-mismatch events: got %d, want 1", len(events))
	}
	ev := events[0]
	if ev.TerminalID != term1 || ev.MerchantID != merch || ev.Attributes["claimed_merchant_id"] != "M999" ||
		ev.Attributes["bound_merchant_id"] != merch || ev.Attributes["authorization_id"] != res.AuthorizationID {
		t.Errorf("event: got %+v, want terminal %s, bound %s, claimed M999, authorization %s", ev, term1, merch, res.AuthorizationID)
	}
	// The ledger keeps the claimed merchant for investigation.
	txs := v.transactions(payment.TxFilter{TerminalID: term1})
	if len(txs) != 1 || txs[0].ClaimedMerchantID != "M999" || txs[0].MerchantID != merch {
		t.Errorf("ledger: got %+v, want one transaction of %s claiming M999", txs, merch)
	}
	// A replay does not raise a second alert.
	if r := v.authorize(req); !r.Replayed {
		t.Fatalf("replay: got %+v, want replayed", r)
	}
	if err := v.audit.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := v.audit.Count(audit.MerchantMismatch); got != 1 {
		t.Errorf("mismatch alerts after replay: got %d, want 1", got)
	}
}

// A terminal claiming another merchant is audited even when something else
// declines it first: suspension keeps 57, a reused request ID 94.
func TestMerchantMismatchIsAuditedWhateverTheCode(t *testing.T) {
	v := newEnv(t)
	v.dir.update(term1, func(p *payment.Policy) { p.Suspended = true })
	req := sale(term1, "jump-1", 500)
	req.MerchantID = "M999"
	res := v.authorize(req)
	if res.ResponseCode != payment.CodeNotPermitted {
		t.Fatalf("suspended terminal: got %s, want 57", res.ResponseCode)
	}
	v.dir.update(term1, func(p *payment.Policy) { p.Suspended = false })
	v.authorize(sale(term1, "same-id", 500))
	dup := sale(term1, "same-id", 600)
	dup.MerchantID = "M998"
	if r := v.authorize(dup); r.ResponseCode != payment.CodeDuplicateTransmission {
		t.Fatalf("reused request ID: got %s, want 94", r.ResponseCode)
	}
	if err := v.audit.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	events, _, err := v.audit.List(t.Context(), audit.Filter{Type: audit.MerchantMismatch}, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]string{}
	for _, ev := range events {
		codes[ev.Attributes["claimed_merchant_id"]] = ev.Attributes["response_code"]
	}
	if len(events) != 2 || codes["M999"] != payment.CodeNotPermitted || codes["M998"] != payment.CodeDuplicateTransmission {
		t.Errorf("merchant-mismatch events: got %v, want M999 with 57 and M998 with 94", codes)
	}
}

func TestDailyLimitFollowsStoreBusinessDate(t *testing.T) {
	v := newEnv(t)
	// 10:00 UTC on March 14 is 23:00 on March 14 in UTC+13.
	v.dir.update(term1, func(p *payment.Policy) {
		p.DailyLimit = payment.LimitOf(1000)
		p.Location = time.FixedZone("UTC+13", 13*3600)
	})
	mustCode(t, v.authorize(sale(term1, "a", 1000)), "00")
	mustCode(t, v.authorize(sale(term1, "b", 1)), "61")
	v.clock.Advance(time.Hour) // midnight in the store: a new business date
	mustCode(t, v.authorize(sale(term1, "c", 1000)), "00")
	txs := v.transactions(payment.TxFilter{TerminalID: term1})
	dates := map[string]string{}
	for _, tx := range txs {
		dates[tx.RequestID] = tx.BusinessDate
	}
	if dates["a"] != "2026-03-14" || dates["c"] != "2026-03-15" {
		t.Errorf("business dates: got %v, want a on 2026-03-14 and c on 2026-03-15", dates)
	}
}

func TestAuthorizeErrors(t *testing.T) {
	v := newEnv(t)
	v.dir.auto = false
	v.dir.set(basePolicy(term1))
	ctx := t.Context()
	if _, err := v.eng.Authorize(ctx, sale("T0000404", "r1", 100)); !errors.Is(err, errUnknownTerminal) {
		t.Errorf("unknown terminal: got %v, want the directory's error", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := v.eng.Authorize(cctx, sale(term1, "r2", 100)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v, want context.Canceled", err)
	}
}

func TestAuthorizeAfterClose(t *testing.T) {
	v := newEnv(t)
	eng := v.eng
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Authorize(t.Context(), sale(term1, "r1", 100)); !errors.Is(err, payment.ErrClosed) {
		t.Errorf("got %v, want ErrClosed", err)
	}
	if eng.Healthy() {
		t.Errorf("Healthy after Close: got true, want false")
	}
	if err := eng.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// In Africa/Cairo clocks jump from 00:00 to 01:00 on 2026-04-24, so that
// day starts at 01:00. The cached day then ended at 01:00 on April 25
// instead of midnight: the first hour of April 25 counted toward April
// 24's daily limit and got its business date, but only while the cache was
// warm, so a restart changed the decision.
func TestBusinessDayAfterMidnightClockChange(t *testing.T) {
	cairo, err := time.LoadLocation("Africa/Cairo")
	if err != nil {
		t.Fatal(err)
	}
	for _, restart := range []bool{false, true} {
		v := newEnv(t)
		v.clock.Advance(time.Date(2026, 4, 24, 12, 0, 0, 0, cairo).Sub(startTime))
		v.dir.update(term1, func(p *payment.Policy) {
			p.DailyLimit = payment.LimitOf(5000)
			p.Location = cairo
		})
		mustCode(t, v.authorize(sale(term1, "apr24", 5000)), "00")
		v.clock.Advance(time.Date(2026, 4, 25, 0, 30, 0, 0, cairo).Sub(v.clock.Now()))
		if restart {
			v.reopen()
		}
		mustCode(t, v.authorize(sale(term1, "apr25-a", 4000)), "00")
		v.clock.Advance(90 * time.Minute)
		mustCode(t, v.authorize(sale(term1, "apr25-b", 1001)), "61")
		for _, tx := range v.transactions(payment.TxFilter{TerminalID: term1}) {
			if want := map[string]string{"apr24": "2026-04-24", "apr25-a": "2026-04-25", "apr25-b": "2026-04-25"}[tx.RequestID]; tx.BusinessDate != want {
				t.Errorf("restart %v: %s decided at %v: business date %s, want %s", restart, tx.RequestID, tx.DecisionTime.In(cairo), tx.BusinessDate, want)
			}
		}
	}
}

// A batch belongs to one merchant, store and currency. After a rebind, the
// terminal's batch holding the old merchant's sales is closed by the
// server and the next one opens under the new binding; it used to stay
// open, so one batch held both merchants' sales and both merchants'
// settlement reports listed it.
func TestRebindClosesTheBatchOfTheOldBinding(t *testing.T) {
	v := newEnv(t)
	ctx := t.Context()
	mustCode(t, v.authorize(sale(term1, "m1-sale", 1000)), "00")
	v.dir.update(term1, func(p *payment.Policy) { p.MerchantID, p.StoreID = "M2", "S2" })
	req := sale(term1, "m2-sale", 700)
	req.MerchantID = "M2"
	mustCode(t, v.authorize(req), "00")
	check := func(when string) {
		old, ok, err := v.eng.Batch(ctx, term1, 1)
		if err != nil || !ok || old.State != payment.BatchStateClosed || old.MerchantID != merch || old.ServerTotals.SaleAmount != 1000 {
			t.Errorf("%s: batch 1 = %+v, %v, %v; want closed, %s's 1000 only", when, old, ok, err, merch)
		}
		open := v.openBatch(term1)
		if open.Number != 2 || open.MerchantID != "M2" || open.StoreID != "S2" || open.ServerTotals.SaleAmount != 700 {
			t.Errorf("%s: open batch = %+v; want batch 2 of M2/S2 with 700", when, open)
		}
		date := v.transactions(payment.TxFilter{TerminalID: term1})[0].BusinessDate
		for m, want := range map[string]int64{merch: 1000, "M2": 700} {
			rep, err := v.eng.SettlementReport(ctx, m, date)
			if err != nil || rep.Totals.SaleAmount != want || len(rep.Batches) != 1 {
				t.Errorf("%s: %s's settlement = %+v, %v; want %d in one batch", when, m, rep, err, want)
			}
		}
	}
	check("before restart")
	v.reopen()
	check("after restart")
	// An empty batch just takes the new binding.
	if _, err := v.eng.CloseBatch(ctx, payment.CloseBatchRequest{TerminalID: term1, RequestID: "close-2", BatchNumber: 2,
		TerminalTotals: payment.BatchTotals{Currency: cur, SaleCount: 1, SaleAmount: 700}}); err != nil {
		t.Fatal(err)
	}
	v.dir.update(term1, func(p *payment.Policy) { p.StoreID = "S3" })
	req = sale(term1, "s3-sale", 5)
	req.MerchantID = "M2"
	mustCode(t, v.authorize(req), "00")
	if open := v.openBatch(term1); open.Number != 3 || open.StoreID != "S3" || open.ServerTotals.SaleAmount != 5 {
		t.Errorf("empty batch after a rebind: %+v; want batch 3 of S3 with 5", open)
	}
}
