package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/posfleet/posfleet/client"
)

// adminVerb is one "posfleet admin <noun> <verb>" command.
type adminVerb struct {
	summary string
	run     func(ctx context.Context, env *adminEnv, args []string) error
}

// adminNouns holds the registered admin commands: noun → verb → command.
// Each domain registers its nouns from an init function in its own file.
var adminNouns = map[string]map[string]adminVerb{}

// registerAdmin adds "posfleet admin <noun> <verb>".
func registerAdmin(noun, verb, summary string, run func(ctx context.Context, env *adminEnv, args []string) error) {
	if adminNouns[noun] == nil {
		adminNouns[noun] = map[string]adminVerb{}
	}
	if _, dup := adminNouns[noun][verb]; dup {
		panic("duplicate admin command " + noun + " " + verb)
	}
	adminNouns[noun][verb] = adminVerb{summary: summary, run: run}
}

// adminEnv is what an admin command works with: a client authenticated
// with an admin token, and where and how to print.
type adminEnv struct {
	Client *client.Client
	Out    io.Writer
	Err    io.Writer
	// JSON selects protojson output instead of tables.
	JSON bool
}

// print writes msg as protojson when --json was given, else a table of rows
// under headers (nothing when headers is nil).
func (e *adminEnv) print(msg proto.Message, headers []string, rows [][]string) error {
	if e.JSON {
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: false}.Marshal(msg)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(e.Out, string(b))
		return err
	}
	if headers == nil {
		return nil
	}
	return writeTable(e.Out, headers, rows)
}

// writeTable prints an aligned table.
func writeTable(w io.Writer, headers []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin", stderr)
	conn := addAdminConnFlags(fs, "127.0.0.1:7400", "server address")
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
	timeout := fs.Duration("timeout", 15*time.Second, "deadline of each call")
	fs.Usage = func() { adminUsage(stderr, fs) }
	// Global flags come before the noun: posfleet admin [flags] <noun> <verb> [verb flags].
	if err := parseFlagsWithArgs(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) < 2 {
		adminUsage(stderr, fs)
		return errUsage
	}
	noun, verb := rest[0], rest[1]
	cmd, ok := adminNouns[noun][verb]
	if !ok {
		fmt.Fprintf(stderr, "posfleet admin: unknown command %q\n\n", noun+" "+verb)
		adminUsage(stderr, fs)
		return errUsage
	}
	c, err := conn.dial(client.WithDefaultTimeout(*timeout))
	if err != nil {
		return err
	}
	defer c.Close()
	env := &adminEnv{Client: c, Out: stdout, Err: stderr, JSON: *asJSON}
	return cmd.run(ctx, env, rest[2:])
}

func adminUsage(w io.Writer, fs interface{ PrintDefaults() }) {
	fmt.Fprintln(w, "usage: posfleet admin [flags] <noun> <verb> [verb flags]\n\ncommands:")
	nouns := make([]string, 0, len(adminNouns))
	for n := range adminNouns {
		nouns = append(nouns, n)
	}
	sort.Strings(nouns)
	for _, n := range nouns {
		verbs := make([]string, 0, len(adminNouns[n]))
		for v := range adminNouns[n] {
			verbs = append(verbs, v)
		}
		sort.Strings(verbs)
		for _, v := range verbs {
			fmt.Fprintf(w, "  %-28s %s\n", n+" "+v, adminNouns[n][v].summary)
		}
	}
	fmt.Fprintln(w, "\nflags:")
	fs.PrintDefaults()
}
