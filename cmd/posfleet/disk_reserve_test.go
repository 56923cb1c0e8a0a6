package main

import "testing"

func TestByteSizeFlag(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"4096", 4096, true},
		{"64MiB", 64 << 20, true},
		{"64mib", 64 << 20, true},
		{"1GB", 1_000_000_000, true},
		{"1.5GiB", 3 << 29, true},
		{"", 0, false},
		{"lots", 0, false},
		{"-1MiB", 0, false},
		{"99999999999EiB", 0, false},
	} {
		var b byteSize
		err := b.Set(c.in)
		if (err == nil) != c.ok || (c.ok && int64(b) != c.want) {
			t.Errorf("Set(%q): got %d, %v; want %d, ok %v", c.in, int64(b), err, c.want, c.ok)
		}
	}
}
