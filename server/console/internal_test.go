package console

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

func TestFormatMinor(t *testing.T) {
	for _, tc := range []struct {
		minor int64
		cur   string
		want  string
	}{
		{1250, "CNY", "12.50 CNY"},
		{5, "NZD", "0.05 NZD"},
		{-1250, "NZD", "-12.50 NZD"},
		{1250, "JPY", "1250 JPY"},
		{1250, "BHD", "1.250 BHD"},
		{0, "CNY", "0.00 CNY"},
	} {
		if got := formatMinor(tc.minor, tc.cur); got != tc.want {
			t.Errorf("formatMinor(%d, %s) = %q, want %q", tc.minor, tc.cur, got, tc.want)
		}
	}
}

func TestParseMajor(t *testing.T) {
	for _, tc := range []struct {
		in, cur string
		want    int64
		ok      bool
	}{
		{"250", "CNY", 25000, true},
		{"12.5", "CNY", 1250, true},
		{"12.50", "CNY", 1250, true},
		{"1250", "JPY", 1250, true},
		{"12.5", "JPY", 0, false},
		{"12.505", "CNY", 0, false},
		{"-1", "CNY", 0, false},
		{"12", "", 0, false},
		{"abc", "CNY", 0, false},
	} {
		m, ok := parseMajor(tc.in, tc.cur)
		if ok != tc.ok || (ok && m.GetMinorUnits() != tc.want) {
			t.Errorf("parseMajor(%q, %q) = %v, %v; want %d, %v", tc.in, tc.cur, m, ok, tc.want, tc.ok)
		}
	}
}

func TestCSVSafe(t *testing.T) {
	for in, want := range map[string]string{
		"=HYPERLINK(\"x\")": "'=HYPERLINK(\"x\")",
		"@SUM(A1)":          "'@SUM(A1)",
		"+1+2":              "'+1+2",
		"-12.50":            "-12.50",
		"M1":                "M1",
	} {
		if got := csvSafe(in); got != want {
			t.Errorf("csvSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSessionExpiry(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SessionTTL, cfg.SessionMaxAge, cfg.MaxSessions = time.Hour, 3*time.Hour, 2
	now := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	s := newSessions(cfg)
	s.now = func() time.Time { return now }
	signIn := func() *http.Request {
		w := httptest.NewRecorder()
		s.create(w, "secret", &pb.AdminToken{TokenId: "t"})
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		for _, c := range w.Result().Cookies() {
			r.AddCookie(c)
		}
		return r
	}
	r := signIn()
	for i := range 3 { // used every 50 minutes: idle expiry never comes
		now = now.Add(50 * time.Minute)
		if s.get(r) == nil {
			t.Fatalf("session expired after %d uses 50 min apart, within the idle TTL", i+1)
		}
	}
	now = now.Add(50 * time.Minute) // 200 min after sign-in: past the max age
	if s.get(r) != nil {
		t.Errorf("session alive after its max age")
	}
	r = signIn()
	now = now.Add(61 * time.Minute)
	if s.get(r) != nil {
		t.Errorf("session alive after an idle hour")
	}
	// Beyond MaxSessions the least recently used goes.
	a, b := signIn(), signIn()
	now = now.Add(time.Minute)
	s.get(a)
	c := signIn()
	if s.get(a) == nil || s.get(c) == nil || s.get(b) != nil {
		t.Errorf("with 2 sessions at most: want the least recently used (b) signed out")
	}
}
