package main

import (
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		env     map[string]string
		wantPos []string
		wantN   string
		wantV   bool
		wantErr error
	}{
		{args: []string{"--n", "x", "a", "b"}, wantPos: []string{"a", "b"}, wantN: "x"},
		{args: []string{"a", "--n", "x", "b", "-v"}, wantPos: []string{"a", "b"}, wantN: "x", wantV: true},
		{args: []string{"a", "b", "--n=x"}, wantPos: []string{"a", "b"}, wantN: "x"},
		{args: []string{"a", "--", "--n", "x"}, wantPos: []string{"a", "--n", "x"}, wantN: "default"},
		{args: []string{"-", "--n", "x"}, wantPos: []string{"-"}, wantN: "x"},
		{args: []string{"a"}, env: map[string]string{"POSFLEET_N": "from-env"}, wantPos: []string{"a"}, wantN: "from-env"},
		{args: []string{"a", "--n", "flag"}, env: map[string]string{"POSFLEET_N": "from-env"}, wantPos: []string{"a"}, wantN: "flag"},
		{args: []string{"a", "--nope"}, wantErr: errUsage},
		{args: []string{"a", "-h"}, wantErr: flag.ErrHelp},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			fs := newFlagSet("test", io.Discard)
			n := fs.String("n", "default", "a string")
			v := fs.Bool("v", false, "a bool")
			pos, err := parseInterspersed(fs, tc.args)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("%q: got error %v, want %v", tc.args, err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(pos, tc.wantPos) || *n != tc.wantN || *v != tc.wantV {
				t.Errorf("%q: got %q, n=%q, v=%v, err %v; want %q, n=%q, v=%v", tc.args, pos, *n, *v, err, tc.wantPos, tc.wantN, tc.wantV)
			}
		})
	}
}
