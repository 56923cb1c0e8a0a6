package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/posfleet/posfleet/internal/buildinfo"
)

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", stderr)
	asJSON := fs.Bool("json", false, "print the build information as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	info := buildinfo.Read()
	if *asJSON {
		b, err := json.MarshalIndent(info, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, string(b))
		return err
	}
	_, err := fmt.Fprintln(stdout, info.String())
	return err
}
