package pan

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Normalize returns s the way the detector reads it: Unicode NFKC (so
// full-width, circled, superscript and mathematical digits become ASCII
// digits, and full-width spaces, dashes, dots, underscores and slashes
// become their ASCII forms), with format characters (zero-width spaces and
// joiners, soft hyphens) and combining marks removed, and every other
// decimal digit (Arabic-Indic, Devanagari, …) replaced by its ASCII digit.
// Invalid UTF-8 bytes become U+FFFD. ASCII text is returned unchanged.
func Normalize(s string) string {
	if isASCII(s) {
		return s
	}
	n := norm.NFKC.String(s)
	var b strings.Builder
	b.Grow(len(n))
	for _, r := range n {
		switch {
		case r < utf8.RuneSelf:
			b.WriteByte(byte(r))
		case unicode.In(r, unicode.Cf, unicode.Mn, unicode.Me):
			// Invisible: they must not split a card number.
		case unicode.IsDigit(r):
			b.WriteByte('0' + digitValue(r))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// digitValue returns the value of a decimal digit (Unicode category Nd).
// Unicode encodes decimal digits in contiguous runs of ten from zero to
// nine, so a digit's value is its distance from the start of its run of
// digits, modulo ten.
func digitValue(r rune) byte {
	n := 0
	for unicode.IsDigit(r - rune(n) - 1) {
		n++
	}
	return byte(n % 10)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Contains reports whether s holds something that reads as a full card
// number (see the package documentation for the exact rule). Use it for
// every field a client or operator writes.
func Contains(s string) bool { return scan(Normalize(s), nil) }

// Redact returns s with every card-number candidate replaced by
// [Redacted]. A string without one is returned unchanged; one with one is
// returned in its normalized form (see [Normalize]).
func Redact(s string) string {
	n := Normalize(s)
	var spans [][2]int
	if !scan(n, func(start, end int) {
		if k := len(spans); k > 0 && start < spans[k-1][1] {
			spans[k-1][1] = max(spans[k-1][1], end)
			return
		}
		spans = append(spans, [2]int{start, end})
	}) {
		return s
	}
	var b strings.Builder
	last := 0
	for _, sp := range spans {
		b.WriteString(n[last:sp[0]])
		b.WriteString(Redacted)
		last = sp[1]
	}
	b.WriteString(n[last:])
	return b.String()
}

// Reason is what a refusal says about a field that holds a card number. It
// never repeats the value.
const Reason = "looks like a card number; card numbers are never accepted"

// Redacted replaces card numbers in redacted text.
const Redacted = "[redacted-card-number]"

// isSeparator reports whether c may stand between the digit groups of a
// printed card number.
func isSeparator(c byte) bool {
	return c == ' ' || c == '-' || c == '.' || c == '_' || c == '/'
}

// maxSeparatorRun is the most separator characters between two digit
// groups of one printed number ("4111 - 1111" has three).
const maxSeparatorRun = 3

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scan reports whether the normalized string n holds a card-number
// candidate. With found set, it reports every candidate (possibly
// overlapping, in order of their start) instead of stopping at the first.
func scan(n string, found func(start, end int)) bool {
	// chain holds the digit groups [start, end) of the current chain:
	// groups joined by short runs of separators.
	var buf [12][2]int
	chain := buf[:0]
	hit := false
	for i := 0; i < len(n); {
		if end := uuidAt(n, i); end > 0 {
			// A canonical UUID is an identifier, never a card number.
			if candidates(n, chain, found) {
				if hit = true; found == nil {
					return true
				}
			}
			chain = chain[:0]
			i = end
			continue
		}
		if !isDigit(n[i]) {
			i++
			continue
		}
		j := i
		for j < len(n) && isDigit(n[j]) {
			j++
		}
		if k := len(chain); k > 0 && !joined(n, chain[k-1][1], i) {
			if candidates(n, chain, found) {
				if hit = true; found == nil {
					return true
				}
			}
			chain = chain[:0]
		}
		chain = append(chain, [2]int{i, j})
		i = j
	}
	return candidates(n, chain, found) || hit
}

// joined reports whether n[from:to] is a run of 1 to maxSeparatorRun
// separators.
func joined(n string, from, to int) bool {
	if to-from < 1 || to-from > maxSeparatorRun {
		return false
	}
	for k := from; k < to; k++ {
		if !isSeparator(n[k]) {
			return false
		}
	}
	return true
}

// candidates reports whether a chain of digit groups holds a card number:
// a single group of 13-19 digits that is not a timestamp, or consecutive
// groups in a printed layout: groups of four and a last group of one to
// four digits (4-4-4-4, 4-4-4-1, 4-4-4-4-3), or 4-6-5 and 4-6-4 (American
// Express, Diners).
func candidates(n string, chain [][2]int, found func(start, end int)) bool {
	size := func(g [2]int) int { return g[1] - g[0] }
	var digits [19]byte
	hit := false
	check := func(gs [][2]int) bool {
		k := 0
		for _, g := range gs {
			k += copy(digits[k:], n[g[0]:g[1]])
		}
		if k < 13 || !luhn(digits[:k]) {
			return false
		}
		if found != nil {
			found(gs[0][0], gs[len(gs)-1][1])
		}
		hit = true
		return found == nil
	}
	for a := range chain {
		if s := size(chain[a]); s >= 13 && s <= 19 && !timestamp(n[chain[a][0]:chain[a][1]]) {
			if check(chain[a : a+1]) {
				return true
			}
		}
		if size(chain[a]) != 4 {
			continue
		}
		for b := a + 1; b < len(chain) && b-a < 5; b++ {
			s := size(chain[b])
			if s < 1 || s > 4 || (b-a == 4 && s == 4) {
				break
			}
			if check(chain[a : b+1]) {
				return true
			}
			if s != 4 {
				break
			}
		}
		if a+2 < len(chain) && size(chain[a+1]) == 6 {
			if s := size(chain[a+2]); (s == 4 || s == 5) && check(chain[a:a+3]) {
				return true
			}
		}
	}
	return hit
}

// timestamp reports whether a run of digits reads as a Unix time in
// milliseconds (13 digits), microseconds (16) or nanoseconds (19) from
// 2001-09-09 to before 2039-09-18: a run that starts with 1, 20 or 21.
// No card scheme issues 13-, 16- or 19-digit numbers starting so (Visa's
// 13-digit numbers start with 4; Mastercard's 2-series and Mir start at 22).
func timestamp(d string) bool {
	switch len(d) {
	case 13, 16, 19:
		return d[0] == '1' || d[0] == '2' && (d[1] == '0' || d[1] == '1')
	}
	return false
}

// uuidAt returns the end of the canonical UUID (8-4-4-4-12 hex digits,
// not preceded or followed by a letter or digit) that starts at n[i], or 0.
func uuidAt(n string, i int) int {
	if i+36 > len(n) || (i > 0 && isAlnum(n[i-1])) || !isUUID(n[i:i+36]) || (i+36 < len(n) && isAlnum(n[i+36])) {
		return 0
	}
	return i + 36
}

func isAlnum(c byte) bool { return isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'z' }

// isUUID reports whether s is a UUID in canonical form: 8-4-4-4-12 hex
// digits of either case, any version.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isDigit(c) && (c|0x20 < 'a' || c|0x20 > 'f') {
				return false
			}
		}
	}
	return true
}

// Luhn reports whether a string of ASCII digits passes the Luhn (mod 10)
// check. It is false for an empty string or any non-digit.
func Luhn(digits string) bool {
	for i := 0; i < len(digits); i++ {
		if !isDigit(digits[i]) {
			return false
		}
	}
	return len(digits) > 0 && luhn([]byte(digits))
}

func luhn(digits []byte) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}
