package console_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/proto"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// The terminal page shows the status history, newest first, with a
// battery sparkline, in English and in Chinese.
func TestTerminalPageStatusHistory(t *testing.T) {
	e := newEnv(t)
	e.merchant("M1", "Tea House", "S1")
	tid, cred := e.registered("SN-1", "M1", "S1")
	b := e.browser()
	b.login(rootToken)
	page := "/terminals/" + tid
	if _, body := b.get(page); historyRows(t, body) != nil {
		t.Errorf("history before any heartbeat: got %q, want no rows", historyRows(t, body))
	}
	e.batteryBeats(cred, 90, 60, 30)
	_, body := b.get(page)
	rows := historyRows(t, body)
	if len(rows) != 3 {
		t.Fatalf("got %d history rows, want 3: %q", len(rows), rows)
	}
	for i, want := range []string{"30%", "60%", "90%"} {
		if !strings.Contains(rows[i], want) || !strings.Contains(rows[i], "-71 dBm") || !strings.Contains(rows[i], "CELLULAR") {
			t.Errorf("history row %d: got %q, want battery %s, CELLULAR and -71 dBm", i, rows[i], want)
		}
	}
	if !regexp.MustCompile(`<svg class="spark"[^>]*><polyline class="line" points="[0-9., ]+">`).MatchString(body) {
		t.Errorf("terminal page has no battery sparkline")
	}
	_, zh, _ := b.do(http.MethodGet, page, nil, map[string]string{"Accept-Language": "zh-CN"})
	if !strings.Contains(zh, "状态历史") || len(historyRows(t, zh)) != 3 {
		t.Errorf("Chinese terminal page: want the 状态历史 heading and 3 rows")
	}
}

// historyRows returns the rows of the terminal page's history table, nil
// when it shows none.
func historyRows(t *testing.T, body string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<tbody id="history">(.*?)</tbody>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("terminal page has no history table")
	}
	if strings.Contains(m[1], `class="muted"`) {
		return nil
	}
	return regexp.MustCompile(`(?s)<tr>.*?</tr>`).FindAllString(m[1], -1)
}

// batteryBeats sends a heartbeat per battery level, on a cellular link at
// -71 dBm.
func (e *env) batteryBeats(cred string, levels ...uint32) {
	e.t.Helper()
	for _, level := range levels {
		st := &pb.TerminalStatus{BatteryPercent: proto.Uint32(level), Paper: pb.PaperStatus_PAPER_STATUS_OK,
			Network: pb.NetworkType_NETWORK_TYPE_CELLULAR, SignalDbm: proto.Int32(-71)}
		if _, err := e.term.Heartbeat(bearer(e.t.Context(), cred), &pb.HeartbeatRequest{Status: st}); err != nil {
			e.t.Fatalf("Heartbeat: %v", err)
		}
	}
}

// In a real browser, under the console's CSP, the history table has its
// rows and the sparkline is drawn as a stroked line across its width.
func TestBrowserTerminalStatusHistory(t *testing.T) {
	e := newEnv(t)
	e.merchant("M1", "Tea House", "S1")
	tid, cred := e.registered("SN-1", "M1", "S1")
	e.batteryBeats(cred, 95, 70, 45, 20)
	ctx := tab(t)
	e.signIn(t, ctx, rootToken)
	run(t, ctx, chromedp.Navigate(e.url+"/terminals/"+tid), chromedp.WaitVisible(chromedp.ID("history")))
	if n := evalInt(t, ctx, `document.querySelectorAll("#history tr").length`); n != 4 {
		t.Errorf("got %d history rows, want 4", n)
	}
	if w := evalInt(t, ctx, `Math.round(document.querySelector("svg.spark polyline").getBBox().width)`); w < 200 {
		t.Errorf("sparkline is %d units wide, want across the 240 of the chart", w)
	}
	if stroked := evalInt(t, ctx, `getComputedStyle(document.querySelector("svg.spark polyline")).stroke === "none" ? 0 : 1`); stroked != 1 {
		t.Errorf("sparkline has no stroke: the stylesheet did not apply")
	}
	screenshot(t, ctx, "")
}
