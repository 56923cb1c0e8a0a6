package main

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// unsafeRune reports whether r must not reach a terminal raw: control
// characters (C0 with ESC, DEL, C1 with CSI), bidirectional controls (LRM,
// RLM, ALM, the embeddings and overrides U+202A–U+202E, the isolates
// U+2066–U+2069) and the line and paragraph separators. Each of them can
// move the cursor, recolour, reorder or break a line, so text from the
// server could forge output.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029'
}

// safeText returns s with every unsafe rune written as a visible escape
// (\n, \t, \x1b, \u202e) and invalid UTF-8 bytes as \xNN, so that a value
// stays on its line and reads as it is stored. Backslashes are doubled
// only when s needs escaping at all, so ordinary text prints unchanged.
func safeText(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && unsafeRune(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i, r := range s {
		if unsafeRune(r) || (r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD")) {
			return true
		}
	}
	return false
}

// safeJSON escapes the unsafe runes that a JSON encoder leaves raw (C1
// controls, bidirectional controls, U+2028/U+2029) as \uXXXX. JSON text
// has such runes only inside strings, where the escape means the same
// rune, so the document decodes to the same values. C0 controls are
// already escaped by the encoder.
func safeJSON(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r >= 0x20 && unsafeRune(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
