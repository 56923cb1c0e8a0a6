package pan_test

import (
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/posfleet/posfleet/server/pan"
)

func TestContains(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		// Raw runs, wherever they stand.
		{"4111111111111111", true},
		{"5500005555555559", true},
		{"378282246310005", true}, // 15 digits
		{"4222222222222", true},   // 13 digits
		{"6250941006528599", true},
		{"6212345678901234560", false},  // 19 digits, Luhn fails
		{"6212345678901234569", true},   // 19 digits
		{"4111111111111112", false},     // Luhn fails
		{"411111111111", false},         // 12 digits
		{"41111111111111111110", false}, // 20 digits
		{"tok_4111111111111111", true},
		{"note:4111111111111111:end", true},
		{"4111111111111111-1", true},
		{"4111111111111111 0000", true},
		// Printed layouts with every separator.
		{"4111 1111 1111 1111", true},
		{"4111-1111-1111-1111", true},
		{"4111.1111.1111.1111", true},
		{"4111_1111_1111_1111", true},
		{"tok_4111_1111_1111_1111", true},
		{"4111/1111/1111/1111", true},
		{"4111 - 1111 - 1111 - 1111", true},
		{"4111--1111-1111-1111", true},
		{"4111 1111-1111.1111", true},
		{"4111    1111 1111 1111", false}, // four spaces: not one number
		{"r-4111-1111-1111-1111-x", true},
		{"5500-0055-5555-5559", true},
		{"3782-822463-10005", true}, // 4-6-5
		{"3056-930902-5904", true},  // 4-6-4, Diners
		{"4222-2222-2222-2", true},  // 4-4-4-1
		{"6212-3456-7890-1234-569", true},
		{"4111-1111-1111-1112", false},
		{"41-11-11-11-11-11-11-11", false}, // not a card layout
		// Full-width and other Unicode forms.
		{"４１１１１１１１１１１１１１１１", true},
		{"４１１１－１１１１－１１１１－１１１１", true},
		{"４１１１\u3000１１１１\u3000１１１１\u3000１１１１", true},
		{"4111\u200b1111\u200b1111\u200b1111", true}, // zero-width spaces
		{"4111\u00ad111111111111", true},             // soft hyphen
		{"٤١١١١١١١١١١١١١١١", true},                   // Arabic-Indic digits
		{"𝟒𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏", true},                   // mathematical digits
		// Not card numbers.
		{"2026-03-14-000123", false},
		{"pos-00012345-0001", false},
		{"411111******1111", false},
		{"", false},
		{"Café 12", false},
		{"\xff\xfe4111", false},
		// Canonical UUIDs are identifiers, even where their digits line up.
		{"215b5a48-0955-4884-9833-3b561c09bea6", false},
		{"13DA6B35-0586-4040-9914-3B19AE3AFAE3", false},
		{"ref-215b5a48-0955-4884-9833-3b561c09bea6", false},
		{"id:215b5a48-0955-4884-9833-3b561c09bea6:2", false},
		{"215b5a48-0955-4884-9833-3b561c09bea", true},
		{"215b5a48-0955-4884-9833-3b561c09beag", true},
		{"x215b5a48-0955-4884-9833-3b561c09bea6", true},
		{"215b5a48:0955-4884-9833-3b561c09bea6", true},
		{"215b5a48-0955-4884-9833-3b561c09bea6 4111111111111111", true},
	}
	for _, tt := range tests {
		if got := pan.Contains(tt.in); got != tt.want {
			t.Errorf("Contains(%q): got %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestTimestampsAreNotCardNumbers(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"1733212345678901230", false},       // Unix nanoseconds, 2024, Luhn-valid
		{"1733212345678901230-0001", false},  // with a sequence
		{"pos:1733212345678901230:a", false}, //
		{"loadgen-1733212345678901230", false},
		{"2133212345678901232", false}, // 2037
		{"1733212345678901", false},    // microseconds
		{"1733212345677", false},       // milliseconds
		{"2233212345678901230", true},  // 2040: 22 starts Mir and Mastercard
		{"6212345678901234569", true},  // UnionPay, 19 digits
		{"4222222222222", true},        // 13-digit Visa
		{"173321234567890", true},      // 15 digits: not a timestamp length
		{"1733-2123-4567-8901", true},  // printed layout
	}
	for _, tt := range tests {
		if got := pan.Contains(tt.in); got != tt.want {
			t.Errorf("Contains(%q): got %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestTimestampIDs checks that IDs built from a nanosecond timestamp are
// accepted however the timestamp falls, while the same digits with another
// leading digit are refused about one time in ten.
func TestTimestampIDs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	flagged := 0
	for range 10_000 {
		// 2001-09-09 .. 2039-09-18 in nanoseconds.
		ns := itoa(1_000_000_000_000_000_000 + rng.Int64N(1_200_000_000_000_000_000))
		if id := ns + "-t01"; pan.Contains(id) {
			t.Fatalf("Contains(%q) = true for a timestamp ID", id)
		}
		if pan.Contains("4" + ns[1:] + "-t01") {
			flagged++
		}
	}
	if flagged < 500 {
		t.Fatalf("only %d of the IDs are card numbers with a leading 4; the sample tests nothing", flagged)
	}
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// TestRandomUUIDs checks that no random UUID is taken for a card number,
// among a sample that holds UUIDs whose digits would be if they were not in
// canonical form: about 1 in 2,700 random UUIDs.
func TestRandomUUIDs(t *testing.T) {
	rng := rand.New(rand.NewChaCha8([32]byte{'p', 'a', 'n'}))
	lookalikes := 0
	for range 100_000 {
		id := randomUUID(rng)
		if pan.Contains(id) || pan.Contains("rev:"+id) {
			t.Fatalf("Contains(%q) = true for a random UUID", id)
		}
		if pan.Contains(strings.ReplaceAll(id, "-", " ")) {
			lookalikes++
		}
	}
	if lookalikes < 10 {
		t.Fatalf("only %d of the UUIDs look like card numbers outside canonical form; the sample tests nothing", lookalikes)
	}
}

func randomUUID(rng *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"detail=4111111111111111", "detail=" + pan.Redacted},
		{"a 4111 1111 1111 1111 b 5500-0055-5555-5559", "a " + pan.Redacted + " b " + pan.Redacted},
		{"４１１１１１１１１１１１１１１１!", pan.Redacted + "!"},
		{"nothing here 1234", "nothing here 1234"},
		{"ｆｕｌｌ ｗｉｄｔｈ kept", "ｆｕｌｌ ｗｉｄｔｈ kept"},
	}
	for _, tt := range tests {
		if got := pan.Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := pan.Redact("1733212345678901230-x"); got != "1733212345678901230-x" {
		t.Errorf("Redact of a timestamp ID: got %q", got)
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"４１１１－１１\u3000．＿／", "4111-11 ._/"},
		{"①②③", "123"},
		{"٤٥٦ ०१२", "456 012"},
		{"a\u200bb\u0301c", "abc"},
	}
	for _, tt := range tests {
		if got := pan.Normalize(tt.in); got != tt.want {
			t.Errorf("Normalize(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
