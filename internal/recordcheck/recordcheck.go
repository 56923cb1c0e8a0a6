// Package recordcheck holds the properties that fuzz tests of stored-record
// decoders assert: a decoder never panics on arbitrary bytes, and whatever
// it accepts encodes to a canonical form that decodes back to the same
// value.
package recordcheck

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// RoundTrip decodes data; when the decoder accepts it, the value must
// encode, the encoding must decode, and encoding that again must give the
// same bytes (decode(encode(v)) == v, compared through the encoding, which
// also sees unexported fields and time zones that reflect.DeepEqual would
// misjudge). It returns whether data was accepted.
func RoundTrip[T any](t testing.TB, data []byte, decode func([]byte) (T, error), encode func(T) ([]byte, error)) bool {
	t.Helper()
	v, err := decode(data)
	if err != nil {
		return false
	}
	b1, err := encode(v)
	if err != nil {
		t.Fatalf("decoded record does not encode: %v", err)
	}
	v2, err := decode(b1)
	if err != nil {
		t.Fatalf("encoding of a decoded record does not decode: %v\nencoding: %q", err, b1)
	}
	b2, err := encode(v2)
	if err != nil {
		t.Fatalf("re-decoded record does not encode: %v", err)
	}
	if !bytes.Equal(b1, b2) {
		t.Fatalf("round trip changed the record:\nfirst:  %q\nsecond: %q", b1, b2)
	}
	return true
}

// RoundTripJSON is RoundTrip for records stored as a schema version byte
// followed by JSON, decoded into a new T; it also requires that data
// without the schema byte is refused.
func RoundTripJSON[T any](t testing.TB, data []byte, schema byte, decode func([]byte, *T) error, encode func(*T) ([]byte, error)) {
	t.Helper()
	accepted := RoundTrip(t, data, func(b []byte) (*T, error) {
		v := new(T)
		return v, decode(b, v)
	}, encode)
	if accepted && (len(data) == 0 || data[0] != schema) {
		t.Fatalf("accepted %q without schema version %d", data, schema)
	}
}

// RoundTripAny is RoundTripJSON for packages whose codec takes any value.
func RoundTripAny[T any](t testing.TB, data []byte, schema byte, decode func([]byte, any) error, encode func(any) ([]byte, error)) {
	t.Helper()
	RoundTripJSON(t, data, schema, func(b []byte, v *T) error { return decode(b, v) }, func(v *T) ([]byte, error) { return encode(v) })
}

// JSONNames asserts the stored JSON name of every field of v's struct type:
// want maps each Go field name to the name in its json tag. The names are
// an on-disk format, so a renamed tag, a dropped field or a field missing
// from want fails: changing the format must be deliberate.
func JSONNames(t testing.TB, v any, want map[string]string) {
	t.Helper()
	typ := reflect.TypeOf(v)
	got := map[string]string{}
	for f := range typ.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		got[f.Name] = name
	}
	for field, name := range want {
		if g, ok := got[field]; !ok {
			t.Errorf("%s.%s: no such field, want one stored as %q", typ.Name(), field, name)
		} else if g != name {
			t.Errorf("%s.%s: stored as %q, want %q", typ.Name(), field, g, name)
		}
	}
	for field, name := range got {
		if _, ok := want[field]; !ok {
			t.Errorf("%s.%s (stored as %q): not in the pinned format", typ.Name(), field, name)
		}
	}
}
