package console_test

import (
	"net/http"
	"strings"
	"testing"
)

// The transactions page filters by store and by response code, and shows
// a refused filter next to its field.
func TestTransactionsFilterByStoreAndCode(t *testing.T) {
	e := newEnv(t)
	e.merchant("M1", "Tea House", "S1", "S2")
	_, cred1 := e.registered("SN-1", "M1", "S1")
	_, cred2 := e.registered("SN-2", "M1", "S2")
	s1 := e.pay(cred1, "M1", "s1-sale", 1200, "tok_a").GetAuthorizationId()
	s2 := e.pay(cred2, "M1", "s2-sale", 3400, "tok_b").GetAuthorizationId()
	s2nsf := e.pay(cred2, "M1", "s2-nsf", 5600, "tok_test_nsf").GetAuthorizationId()
	b := e.browser()
	b.login(rootToken)
	tests := []struct {
		path      string
		want, not []string
	}{
		{"/transactions?merchant=M1&store=S2", []string{s2, s2nsf}, []string{s1}},
		{"/transactions?merchant=M1&store=S1", []string{s1}, []string{s2, s2nsf}},
		{"/transactions?code=51", []string{s2nsf}, []string{s1, s2}},
		{"/transactions?merchant=M1&store=S2&code=00", []string{s2}, []string{s1, s2nsf}},
	}
	for _, tc := range tests {
		code, body := b.get(tc.path)
		if code != http.StatusOK {
			t.Fatalf("GET %s: got %d, want 200\n%.2000s", tc.path, code, body)
		}
		for _, id := range tc.want {
			if !strings.Contains(body, `data-tx="`+id+`"`) {
				t.Errorf("GET %s: transaction %s not listed", tc.path, id)
			}
		}
		for _, id := range tc.not {
			if strings.Contains(body, `data-tx="`+id+`"`) {
				t.Errorf("GET %s: transaction %s listed, want it filtered out", tc.path, id)
			}
		}
	}
	for path, field := range map[string]string{"/transactions?store=S2": `name="store"`, "/transactions?code=9": `name="code"`} {
		_, body := b.get(path)
		i := strings.Index(body, field)
		if i < 0 || !strings.Contains(body[i:min(len(body), i+300)], `class="ferr"`) {
			t.Errorf("GET %s: no error shown next to %s\n%.3000s", path, field, body)
		}
	}
}
