package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// newFlagSet returns a flag set for a subcommand that reports errors
// instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("posfleet "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// envName is the environment twin of a flag: --data-dir → POSFLEET_DATA_DIR.
func envName(flagName string) string {
	return "POSFLEET_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags parses args, flags and positional arguments in any order, then
// fills every flag not given on the command line from its POSFLEET_*
// environment variable. Flags win over environment. Positional arguments
// are refused.
func parseFlags(fs *flag.FlagSet, args []string) error {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(pos, " "))
	}
	return nil
}

// parseInterspersed is parseFlags for commands that take positional
// arguments: flags may come before, between and after them ("--" ends the
// flags), and the positional arguments are returned in order.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	describeEnv(fs)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, parseError(err)
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return pos, fillFromEnv(fs)
}

// parseFlagsWithArgs parses the flags before the first positional argument
// and leaves the rest in fs.Args(): for commands whose positional arguments
// start a subcommand with flags of its own ("admin [flags] <noun> <verb>
// [verb flags]").
func parseFlagsWithArgs(fs *flag.FlagSet, args []string) error {
	describeEnv(fs)
	if err := fs.Parse(args); err != nil {
		return parseError(err)
	}
	return fillFromEnv(fs)
}

// afterParser is a flag.Value with work to do once a flag set is parsed and
// filled from the environment (e.g. dial a server with the flags' values).
type afterParser interface{ afterParse() error }

// describeEnv appends each flag's environment twin to its usage, once.
func describeEnv(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		if note := " (env " + envName(f.Name) + ")"; !strings.HasSuffix(f.Usage, note) {
			f.Usage += note
		}
	})
}

func parseError(err error) error {
	if err == flag.ErrHelp {
		return err
	}
	return errUsage
}

// fillFromEnv sets every flag not given on the command line from its
// environment twin, then runs the flags' afterParse hooks.
func fillFromEnv(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", envName(f.Name), v, e)
			}
		}
	})
	if err != nil {
		return err
	}
	fs.VisitAll(func(f *flag.Flag) {
		if h, ok := f.Value.(afterParser); ok && err == nil {
			err = h.afterParse()
		}
	})
	return err
}

// isFlagSet reports whether the flag was given on the command line or by
// its environment twin.
func isFlagSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}
