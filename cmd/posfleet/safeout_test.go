package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSafeText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Kiwi Foods Ltd", "Kiwi Foods Ltd"},
		{`C:\path`, `C:\path`},
		{"Kia ora, café 日本", "Kia ora, café 日本"},
		{"a\nb\tc\r", `a\nb\tc\r`},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"back\\slash\x07", `back\\slash\x07`},
		{"\u009b2J", `\u009b2J`},
		{"abc\u202egnp.exe", `abc\u202egnp.exe`},
		{"\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069", `\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069`},
		{"line\u2028sep", `line\u2028sep`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"\x7f", `\x7f`},
	} {
		if got := safeText(tc.in); got != tc.want {
			t.Errorf("safeText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSafeJSONKeepsValues(t *testing.T) {
	in := map[string]string{"message": "ok\u202e\u0085\u2028\u2066x", "plain": "tab\there"}
	b, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	out := safeJSON(string(b))
	for _, r := range out {
		if r != '\n' && unsafeRune(r) {
			t.Fatalf("safeJSON left %U raw in %q", r, out)
		}
	}
	var back map[string]string
	if err := json.Unmarshal([]byte(out), &back); err != nil {
		t.Fatalf("safeJSON output is not JSON: %v\n%s", err, out)
	}
	if back["message"] != in["message"] || back["plain"] != in["plain"] {
		t.Errorf("decoded %q, want %q", back, in)
	}
	if !strings.Contains(out, `\u202e`) {
		t.Errorf("no escape in %s", out)
	}
}
