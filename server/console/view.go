package console

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/currency"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// view is what every page template receives.
type view struct {
	L     *lang
	Sess  *session
	Title string
	// Path is the page's URL path, for the navigation and the language
	// switch.
	Path string
	// Refresh, when positive, makes the page reload its <main> every so
	// many seconds (static/console.js).
	Refresh int
	// Flash is a message about the last action; Err one about a failure,
	// with Fields: what is wrong with each form field.
	Flash, Err string
	Fields     map[string]string
	// Form holds the submitted form, to fill the fields in again.
	Form url.Values
	// D is the page's own data.
	D any
}

// T translates s.
func (v *view) T(s string) string { return v.L.T(s) }

// CSRF is the token every form carries.
func (v *view) CSRF() string {
	if v.Sess == nil {
		return ""
	}
	return v.Sess.csrf
}

// CanWrite reports whether the signed-in role may change things (OPERATOR
// or ADMIN). Controls are hidden otherwise; the server refuses anyway.
func (v *view) CanWrite() bool {
	return v.Sess != nil && v.Sess.Role() >= pb.Role_ROLE_OPERATOR
}

// IsAdmin reports whether the signed-in role is ADMIN.
func (v *view) IsAdmin() bool { return v.Sess != nil && v.Sess.Role() == pb.Role_ROLE_ADMIN }

// FieldErr returns what is wrong with a form field, "" if nothing: the
// violations of the request field path or of its elements and subfields
// ("rollout.stage_percents[0]" for "rollout.stage_percents").
func (v *view) FieldErr(field string) string {
	var msgs []string
	for _, k := range sortedKeys(v.Fields) {
		if k == field || strings.HasPrefix(k, field+"[") || strings.HasPrefix(k, field+".") {
			msgs = append(msgs, v.Fields[k])
		}
	}
	return strings.Join(msgs, "; ")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Val returns a submitted form value.
func (v *view) Val(field string) string { return v.Form.Get(field) }

// render writes a page with data d.
func (q *request) render(page, title string, d any) {
	q.renderPage(page, &view{Title: title, D: d})
}

// renderPage writes the named page with v.
func (q *request) renderPage(page string, v *view) {
	v.L, v.Sess, v.Path = q.lang, q.sess, q.r.URL.Path
	if done := q.r.URL.Query().Get("done"); v.Flash == "" && done != "" {
		v.Flash = q.T("Done:") + " " + q.T(done)
	}
	q.c.write(q.w, page, v)
}

func (c *Console) write(w http.ResponseWriter, page string, v *view) {
	t := c.pages[page]
	if t == nil {
		http.Error(w, "no page "+page, http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		c.logger.Error("console: render", "page", page, "err", err)
		http.Error(w, "render failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

// parsePages parses each page template together with the layout.
func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("").Funcs(funcs).ParseFS(assets, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	files, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(assets, f)
		if err != nil {
			return nil, err
		}
		pages[name] = t
	}
	return pages, nil
}

// funcs are the template functions: formatting of API values.
var funcs = template.FuncMap{
	"money":       formatMoney,
	"minor":       formatMinor,
	"when":        formatTime,
	"enum":        enumName,
	"pct":         func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" },
	"bar":         barWidth,
	"progress":    rolloutProgress,
	"query":       queryWith,
	"sortedKeys":  sortedKeys,
	"add":         func(a, b int) int { return a + b },
	"mul":         func(a, b int) int { return a * b },
	"txs":         txRows,
	"rolloutList": func(v *view, rs []*pb.Rollout) rolloutTable { return rolloutTable{V: v, Rollouts: rs} },
	"list":        func(s ...string) []string { return s },
	"int":         func(n uint32) int { return int(n) },
	"hasBattery":  func(s *pb.TerminalStatus) bool { return s != nil && s.BatteryPercent != nil },
	"hasSignal":   func(s *pb.TerminalStatus) bool { return s != nil && s.SignalDbm != nil },
}

// currencyDigits returns the minor-unit digits of an ISO 4217 code (NZD 2,
// JPY 0, BHD 3), from the CLDR data; 2 for an unknown code.
func currencyDigits(code string) int {
	u, err := currency.ParseISO(code)
	if err != nil {
		return 2
	}
	scale, _ := currency.Standard.Rounding(u)
	return scale
}

// formatMinor renders minor units in major units with the currency:
// 1250 NZD → "12.50 NZD", 1250 JPY → "1250 JPY".
func formatMinor(minor int64, cur string) string {
	d := currencyDigits(cur)
	sign := ""
	u := uint64(minor)
	if minor < 0 {
		sign, u = "-", uint64(-minor)
	}
	p := uint64(math.Pow10(d))
	s := strconv.FormatUint(u/p, 10)
	if d > 0 {
		s += "." + fmt.Sprintf("%0*d", d, u%p)
	}
	return strings.TrimSpace(sign + s + " " + cur)
}

func formatMoney(m *pb.Money) string {
	if m == nil {
		return "–"
	}
	return formatMinor(m.GetMinorUnits(), m.GetCurrency())
}

// formatTime renders a timestamp in the time zone zone (an IANA name; the
// server's zone when empty or unknown), with the zone's abbreviation.
func formatTime(ts *timestamppb.Timestamp, zone string) string {
	if ts == nil || (ts.GetSeconds() == 0 && ts.GetNanos() == 0) {
		return "–"
	}
	loc := time.Local
	if zone != "" {
		if l, err := time.LoadLocation(zone); err == nil {
			loc = l
		}
	}
	return ts.AsTime().In(loc).Format("2006-01-02 15:04:05 MST")
}

// enumName shortens an enum value's name for display: CONNECTIVITY_ONLINE →
// ONLINE. The template translates the result.
func enumName(v fmt.Stringer) string {
	s := v.String()
	if strings.HasSuffix(s, "_UNSPECIFIED") {
		return "–"
	}
	for _, p := range []string{"CONNECTIVITY_", "TERMINAL_STATE_", "ROLLOUT_STATE_", "AUDIT_EVENT_TYPE_", "DECISION_",
		"BATCH_STATE_", "COMMAND_STATE_", "COMMAND_TYPE_", "ROLE_", "TRANSACTION_KIND_", "PAPER_STATUS_", "NETWORK_TYPE_",
		"ENTRY_MODE_", "CONFIG_VALUE_ORIGIN_", "FAULT_SEVERITY_", "REVERSAL_REASON_"} {
		if strings.HasPrefix(s, p) {
			return s[len(p):]
		}
	}
	return s
}

// barWidth scales n of max to a bar of at most width pixels.
func barWidth(n, max uint64, width int) int {
	if max == 0 {
		return 0
	}
	return int(float64(n) / float64(max) * float64(width))
}

// rolloutProgress is the share of a rollout's targeted terminals that
// applied its version, in percent.
func rolloutProgress(r *pb.Rollout) int {
	if r.GetTargetedTerminals() == 0 {
		return 0
	}
	return int(r.GetApplied() * 100 / r.GetTargetedTerminals())
}

// queryWith returns the query q with key set to value, encoded.
func queryWith(q url.Values, key, value string) string {
	n := url.Values{}
	for k, v := range q {
		n[k] = v
	}
	n.Set(key, value)
	return n.Encode()
}

// rolloutTable is the data of the shared "rollouts" template.
type rolloutTable struct {
	V        *view
	Rollouts []*pb.Rollout
}
