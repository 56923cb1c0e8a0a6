package pan_test

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/posfleet/posfleet/server/pan"
)

// separators are the characters a card number's groups may be joined by,
// in ASCII and full-width forms.
var separators = []string{" ", "-", ".", "_", "/", "\u3000", "－", "．", "＿", "／"}

// digitForms renders a digit: ASCII, full-width, Arabic-Indic, mathematical
// bold, or ASCII followed by a zero-width space.
var digitForms = []func(d byte) string{
	func(d byte) string { return string(rune('0' + d)) },
	func(d byte) string { return string(rune(0xFF10 + rune(d))) },
	func(d byte) string { return string(rune(0x0660 + rune(d))) },
	func(d byte) string { return string(rune(0x1D7CE + rune(d))) },
	func(d byte) string { return string(rune('0'+d)) + "\u200b" },
}

// bits hands out numbers from fuzz input, then zeros.
type bits struct{ b []byte }

func (x *bits) next(n int) int {
	if len(x.b) == 0 {
		return 0
	}
	v := int(x.b[0]) % n
	x.b = x.b[1:]
	return v
}

// cardNumber builds a Luhn-valid number of 13-19 digits from x.
func cardNumber(x *bits) []byte {
	n := 13 + x.next(7)
	d := make([]byte, n)
	for i := range n - 1 {
		d[i] = byte(x.next(10))
	}
	fixLuhn(d)
	return d
}

// notTimestamp makes a raw number that reads as a Unix timestamp (13, 16 or
// 19 digits starting with 1, 20 or 21, which no card scheme issues) start
// with 4 instead, and fixes its check digit.
func notTimestamp(d []byte) []byte {
	n := len(d)
	if (n == 13 || n == 16 || n == 19) && (d[0] == 1 || d[0] == 2 && d[1] <= 1) {
		d[0] = 4
		fixLuhn(d)
	}
	return d
}

// fixLuhn sets the last digit so that d passes the Luhn check.
func fixLuhn(d []byte) {
	s := make([]byte, len(d))
	for c := range byte(10) {
		d[len(d)-1] = c
		for i := range d {
			s[i] = '0' + d[i]
		}
		if pan.Luhn(string(s)) {
			return
		}
	}
}

// layout returns the group sizes the number is printed in.
func layout(x *bits, n int) []int {
	switch choice := x.next(3); {
	case choice == 0:
		return []int{n}
	case choice == 1 && n == 15:
		return []int{4, 6, 5}
	case choice == 1 && n == 14:
		return []int{4, 6, 4}
	case n <= 16:
		return []int{4, 4, 4, n - 12}
	default:
		return []int{4, 4, 4, 4, n - 16}
	}
}

// render prints a card number with the layout, separators and digit forms
// that x picks.
func render(x *bits, d []byte) string {
	var b strings.Builder
	k := 0
	for g, size := range layout(x, len(d)) {
		if g > 0 {
			for range 1 + x.next(3) {
				b.WriteString(separators[x.next(len(separators))])
			}
		}
		for range size {
			b.WriteString(digitForms[x.next(len(digitForms))](d[k]))
			k++
		}
	}
	return b.String()
}

// FuzzPAN checks the detector's properties: it never panics on any text; a
// Luhn-valid 13-19 digit number printed in a card layout, with any
// separators and digit forms, is found in any surrounding text (unless it
// reads as a Unix timestamp, which no scheme issues); redacted
// text holds no card number; a canonical UUID is never one.
func FuzzPAN(f *testing.F) {
	f.Add("", "", []byte{3, 4, 1, 1, 1, 1})
	f.Add("note:", ":end", []byte{0, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1})
	f.Add("tok_", "", []byte{3, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3, 3, 3})
	f.Add("ｆｕｌｌ", "ｗｉｄｔｈ", []byte{2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 1, 1, 1})
	f.Add("4111 1111", "1111 1111", []byte{6, 9, 9, 9})
	f.Add("215b5a48-0955-4884-9833-", "3b561c09bea6", []byte{0x21, 0x5b, 0x5a, 0x48, 0x09, 0x55, 0x48, 0x84, 0x98, 0x33, 0x3b, 0x56, 0x1c, 0x09, 0xbe, 0xa6})
	f.Add("\xff\xfe", "\u0301\u200d", []byte{})
	f.Fuzz(func(t *testing.T, prefix, suffix string, seed []byte) {
		// Never panics, on anything.
		for _, s := range []string{prefix, suffix, prefix + suffix} {
			pan.Contains(s)
			pan.Normalize(s)
			if r := pan.Redact(s); pan.Contains(r) {
				t.Fatalf("Redact(%q) = %q still holds a card number", s, r)
			}
		}

		x := &bits{b: seed}
		number := render(x, notTimestamp(cardNumber(x)))
		text := prefix + "#" + number + "#" + suffix
		if !pan.Contains(text) {
			t.Fatalf("Contains(%q) = false; the card number %q was missed", text, number)
		}
		if r := pan.Redact(text); pan.Contains(r) {
			t.Fatalf("Redact(%q) = %q still holds the card number", text, r)
		}

		// Canonical UUIDs, in either case, are never card numbers.
		var u [16]byte
		copy(u[:], seed)
		h := hex.EncodeToString(u[:])
		if len(seed) > 16 && seed[16]%2 == 1 {
			h = strings.ToUpper(h)
		}
		uuid := h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
		if pan.Contains(uuid) {
			t.Fatalf("Contains(%q) = true for a canonical UUID", uuid)
		}
	})
}
