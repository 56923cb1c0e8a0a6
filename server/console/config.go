package console

import (
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

type configData struct {
	Scope    *pb.ConfigScope
	Layer    *pb.ConfigVersion
	Versions []*pb.ConfigVersion
	Diff     *pb.DiffConfigVersionsResponse
	Rollouts []*pb.Rollout
	// ScopeQuery is the scope as a query string, for links.
	ScopeQuery string
}

// scopeOf reads a config scope from a form or query.
func scopeOf(f url.Values) *pb.ConfigScope {
	return &pb.ConfigScope{MerchantId: strings.TrimSpace(f.Get("merchant")), StoreId: strings.TrimSpace(f.Get("store")), TerminalId: strings.TrimSpace(f.Get("terminal"))}
}

func scopeQuery(s *pb.ConfigScope) string {
	return url.Values{"merchant": {s.GetMerchantId()}, "store": {s.GetStoreId()}, "terminal": {s.GetTerminalId()}}.Encode()
}

// configPage shows a scope's layer, its versions (with a diff of two) and
// the publish form, and the rollouts.
func (c *Console) configPage(q *request) {
	c.showConfig(q, &view{Form: q.r.URL.Query()})
}

func (c *Console) showConfig(q *request, v *view) {
	ctx, cancel := q.ctx()
	defer cancel()
	f := q.r.URL.Query()
	if q.r.Method == http.MethodPost {
		f = q.r.PostForm
	}
	d := &configData{Scope: scopeOf(f)}
	d.ScopeQuery = scopeQuery(d.Scope)
	if layer, err := c.admin.GetConfigLayer(ctx, &pb.GetConfigLayerRequest{Scope: d.Scope}); err == nil {
		d.Layer = layer.GetLayer()
	} else if ce := q.failed(err); ce == nil {
		return
	} else if v.Err == "" {
		v.Err, v.Fields = ce.Message, ce.Fields
	}
	if vs, err := c.admin.ListConfigVersions(ctx, &pb.ListConfigVersionsRequest{Scope: d.Scope, PageSize: 20}); err == nil {
		d.Versions = vs.GetVersions()
	}
	from, _ := strconv.ParseUint(f.Get("from"), 10, 64)
	to, _ := strconv.ParseUint(f.Get("to"), 10, 64)
	if from > 0 && to > 0 {
		diff, err := c.admin.DiffConfigVersions(ctx, &pb.DiffConfigVersionsRequest{FromVersion: from, ToVersion: to})
		if err != nil {
			if ce := q.failed(err); ce == nil {
				return
			} else if v.Err == "" {
				v.Err = ce.Message
			}
		}
		d.Diff = diff
	}
	ro, err := c.admin.ListRollouts(ctx, &pb.ListRolloutsRequest{PageSize: 20})
	if err != nil {
		q.mustNot(err)
		return
	}
	d.Rollouts = ro.GetRollouts()
	v.Title, v.D = "Config", d
	q.renderPage("config", v)
}

// formError is a form value the console could not read, reported with the
// request field path the server would use.
type formError struct{ fields map[string]string }

func (e *formError) add(field, msg string) { e.fields[field] = msg }

// publishConfig publishes settings at a scope with a rollout plan, or
// rolls a scope back to an earlier version (rollback=VERSION).
func (c *Console) publishConfig(q *request) {
	f := q.r.PostForm
	ctx, cancel := q.ctx()
	defer cancel()
	scope := scopeOf(f)
	bad := &formError{fields: map[string]string{}}
	plan := rolloutPlan(f, bad)
	var rolloutID string
	if to := f.Get("rollback"); to != "" {
		v, err := strconv.ParseUint(to, 10, 64)
		if err != nil {
			bad.add("to_version", q.T("not a version number"))
		}
		if len(bad.fields) == 0 {
			resp, err := c.admin.RollbackConfig(ctx, &pb.RollbackConfigRequest{Scope: scope, ToVersion: v, Rollout: plan, Description: f.Get("description")})
			if err != nil {
				c.configRefused(q, err)
				return
			}
			rolloutID = resp.GetRollout().GetRolloutId()
		}
	} else {
		settings := settingsOf(f, bad, q)
		if len(bad.fields) == 0 {
			resp, err := c.admin.PublishConfig(ctx, &pb.PublishConfigRequest{Scope: scope, Settings: settings, Rollout: plan, Description: f.Get("description")})
			if err != nil {
				c.configRefused(q, err)
				return
			}
			rolloutID = resp.GetRolloutId()
		}
	}
	if len(bad.fields) > 0 {
		q.w.WriteHeader(http.StatusBadRequest)
		c.showConfig(q, &view{Err: q.T("Some fields need attention."), Fields: bad.fields, Form: f})
		return
	}
	http.Redirect(q.w, q.r, "/rollouts/"+url.PathEscape(rolloutID)+"?done=published", http.StatusSeeOther)
}

// configRefused shows a refused publish next to the form.
func (c *Console) configRefused(q *request, err error) {
	if ce := q.failed(err); ce != nil {
		q.w.WriteHeader(httpStatus(ce))
		c.showConfig(q, &view{Err: ce.Message, Fields: ce.Fields, Form: q.r.PostForm})
	}
}

// rolloutPlan reads the rollout fields: stages ("10,50,100"), max failure
// ratio, auto-advance and the least time per stage.
func rolloutPlan(f url.Values, bad *formError) *pb.RolloutPlan {
	p := &pb.RolloutPlan{AutoAdvance: f.Get("auto_advance") != ""}
	for _, s := range strings.FieldsFunc(f.Get("stages"), func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.ParseUint(strings.TrimSuffix(s, "%"), 10, 32)
		if err != nil {
			bad.add("rollout.stage_percents", "stages are percentages, e.g. 10,50,100")
			break
		}
		p.StagePercents = append(p.StagePercents, uint32(n))
	}
	if s := f.Get("max_failure_ratio"); s != "" {
		r, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(r) {
			bad.add("rollout.max_failure_ratio", "a ratio between 0 and 1, e.g. 0.05")
		}
		p.MaxFailureRatio = r
	}
	if s := f.Get("min_stage_duration"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			bad.add("rollout.min_stage_duration", "a duration, e.g. 30s or 10m")
		}
		p.MinStageDuration = durationpb.New(d)
	}
	return p
}

// settingsOf reads the typed settings and the extra key=value lines; an
// empty field leaves the setting to other layers.
func settingsOf(f url.Values, bad *formError, q *request) *pb.Settings {
	s := &pb.Settings{}
	opt := func(name string) *string {
		if v := f.Get(name); v != "" {
			return proto.String(v)
		}
		return nil
	}
	s.ReceiptHeader, s.ReceiptFooter, s.TimeZone = opt("receipt_header"), opt("receipt_footer"), opt("time_zone")
	if v := f.Get("heartbeat_interval"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			bad.add("settings.heartbeat_interval", q.T("a duration, e.g. 60s"))
		}
		s.HeartbeatInterval = durationpb.New(d)
	}
	cur := strings.TrimSpace(f.Get("currency"))
	money := func(name string) *pb.Money {
		v := strings.TrimSpace(f.Get(name))
		if v == "" {
			return nil
		}
		m, ok := parseMajor(v, cur)
		if !ok {
			bad.add("settings."+name, q.T("an amount in major units, e.g. 250.00, with the currency set"))
		}
		return m
	}
	s.PerTransactionLimit, s.DailyLimit = money("per_transaction_limit"), money("daily_limit")
	for _, line := range strings.Split(f.Get("extra"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			bad.add("settings.extra", q.T("one key=value per line"))
			break
		}
		if s.Extra == nil {
			s.Extra = map[string]string{}
		}
		s.Extra[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return s
}

// parseMajor reads an amount in major units ("250", "12.50") in currency
// cur into minor units.
func parseMajor(v, cur string) (*pb.Money, bool) {
	digits := currencyDigits(cur)
	whole, frac, _ := strings.Cut(v, ".")
	if cur == "" || len(frac) > digits || whole == "" {
		return nil, false
	}
	frac += strings.Repeat("0", digits-len(frac))
	n, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil || n < 0 {
		return nil, false
	}
	return &pb.Money{MinorUnits: n, Currency: cur}, true
}

// rollout shows one rollout's live progress with its controls.
func (c *Console) rollout(q *request) {
	ctx, cancel := q.ctx()
	defer cancel()
	r, err := c.admin.GetRollout(ctx, &pb.GetRolloutRequest{RolloutId: q.r.PathValue("id")})
	if err != nil {
		q.mustNot(err)
		return
	}
	ro := r.GetRollout()
	refresh := 0
	switch ro.GetState() {
	case pb.RolloutState_ROLLOUT_STATE_RUNNING, pb.RolloutState_ROLLOUT_STATE_PAUSED, pb.RolloutState_ROLLOUT_STATE_HALTED:
		refresh = c.cfg.RefreshSeconds
	}
	q.renderPage("rollout", &view{Title: "Rollout", Refresh: refresh, D: ro})
}

// rolloutAction pauses, resumes, advances or aborts (rolls back) a rollout.
func (c *Console) rolloutAction(q *request) {
	ctx, cancel := q.ctx()
	defer cancel()
	id := q.r.PathValue("id")
	reason := q.r.PostFormValue("reason")
	var err error
	switch q.r.PathValue("action") {
	case "pause":
		_, err = c.admin.PauseRollout(ctx, &pb.PauseRolloutRequest{RolloutId: id, Reason: reason})
	case "resume":
		_, err = c.admin.ResumeRollout(ctx, &pb.ResumeRolloutRequest{RolloutId: id})
	case "advance":
		_, err = c.admin.AdvanceRollout(ctx, &pb.AdvanceRolloutRequest{RolloutId: id})
	case "abort":
		_, err = c.admin.AbortRollout(ctx, &pb.AbortRolloutRequest{RolloutId: id, Reason: reason})
	default:
		http.NotFound(q.w, q.r)
		return
	}
	if err != nil {
		if ce := q.failed(err); ce != nil {
			q.fail(httpStatus(ce), ce.Message)
		}
		return
	}
	http.Redirect(q.w, q.r, "/rollouts/"+url.PathEscape(id)+"?done="+url.QueryEscape(q.r.PathValue("action")), http.StatusSeeOther)
}
