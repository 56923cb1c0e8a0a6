package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"os"
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
	// Client is dialed once the verb's flags are parsed (verbFlags).
	Client *client.Client
	Out    io.Writer
	Err    io.Writer
	// JSON selects protojson output instead of tables.
	JSON bool

	// conn holds the connection flags, which may be given before the noun
	// or after the verb.
	conn adminConnFlags
	// given are the connection flags set before the noun: the verb's flag
	// set takes them as given, so that their environment twins do not
	// override them.
	given map[string]string
}

// adminConnFlags are the flags of "posfleet admin" itself.
type adminConnFlags struct {
	target, tokenFile, tlsCA string
	useTLS                   bool
	timeout                  time.Duration
}

// register adds the connection flags to fs. With dial set, the --target
// flag dials env.Client once fs is parsed.
func (e *adminEnv) register(fs *flag.FlagSet, dial bool) {
	c := &e.conn
	d := &dialFlag{env: e}
	if dial {
		d.fs = fs
	}
	fs.Var(d, "target", "server address host:port, or a comma-separated list of cluster nodes (host:port,host:port,…): calls go to one and move to another when it is gone")
	fs.StringVar(&c.tokenFile, "admin-token-file", c.tokenFile, "file holding an admin token (or set POSFLEET_ADMIN_TOKEN)")
	fs.BoolVar(&e.JSON, "json", e.JSON, "print JSON instead of tables")
	fs.StringVar(&c.tlsCA, "tls-ca", c.tlsCA, "CA certificate (PEM) to verify the server; enables TLS")
	fs.BoolVar(&c.useTLS, "tls", c.useTLS, "connect with TLS using the system roots")
	fs.DurationVar(&c.timeout, "timeout", c.timeout, "deadline of each call")
}

// dialFlag is --target: after parsing it dials the server.
type dialFlag struct {
	env *adminEnv
	fs  *flag.FlagSet // nil on the admin-level flag set, which does not dial
}

func (d *dialFlag) String() string {
	if d == nil || d.env == nil {
		return ""
	}
	return d.env.conn.target
}

func (d *dialFlag) Set(v string) error { d.env.conn.target = v; return nil }

func (d *dialFlag) afterParse() error {
	if d.fs == nil {
		return nil
	}
	return d.env.dial(isFlagSet(d.fs, "admin-token-file"))
}

// dial connects env.Client with the connection flags.
func (e *adminEnv) dial(tokenFileGiven bool) error {
	c := e.conn
	token := strings.TrimSpace(os.Getenv("POSFLEET_ADMIN_TOKEN"))
	if token == "" || tokenFileGiven {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return fmt.Errorf("admin token: %w (give --admin-token-file or POSFLEET_ADMIN_TOKEN)", err)
		}
		token = strings.TrimSpace(string(b))
	}
	opts := []client.Option{client.WithBearer(token), client.WithDefaultTimeout(c.timeout)}
	tlsOpt, err := tlsOption(c.tlsCA, c.useTLS)
	if err != nil {
		return err
	}
	cl, err := client.Dial(c.target, append(opts, tlsOpt)...)
	if err != nil {
		return err
	}
	e.Client = cl
	return nil
}

// tlsOption is the transport for --tls-ca FILE, --tls, or neither
// (plaintext).
func tlsOption(caFile string, useTLS bool) (client.Option, error) {
	switch {
	case caFile != "":
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca: no certificate in %s", caFile)
		}
		return client.WithTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}), nil
	case useTLS:
		return client.WithTLS(nil), nil
	}
	return client.WithInsecure(), nil
}

// print writes msg as protojson when --json was given, else a table of rows
// under headers (nothing when headers is nil). Text from the server is
// escaped (safeText) either way.
func (e *adminEnv) print(msg proto.Message, headers []string, rows [][]string) error {
	if e.JSON {
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: false}.Marshal(msg)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(e.Out, safeJSON(string(b)))
		return err
	}
	if headers == nil {
		return nil
	}
	return writeTable(e.Out, headers, rows)
}

// writeTable prints an aligned table, every cell escaped with safeText.
func writeTable(w io.Writer, headers []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(cells []string) {
		esc := make([]string, len(cells))
		for i, c := range cells {
			esc[i] = safeText(c)
		}
		fmt.Fprintln(tw, strings.Join(esc, "\t"))
	}
	line(headers)
	for _, r := range rows {
		line(r)
	}
	return tw.Flush()
}

func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin", stderr)
	env := &adminEnv{Out: stdout, Err: stderr, conn: adminConnFlags{
		target: "127.0.0.1:7400", tokenFile: "./posfleet-data/admin.token", timeout: 15 * time.Second,
	}}
	env.register(fs, false)
	fs.Usage = func() { adminUsage(stderr, fs) }
	// Connection flags may come before the noun or after the verb:
	// posfleet admin [flags] <noun> <verb> [verb flags and connection flags].
	if err := parseFlagsWithArgs(fs, args); err != nil {
		return err
	}
	env.given = map[string]string{}
	fs.Visit(func(f *flag.Flag) { env.given[f.Name] = f.Value.String() })
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
	defer func() {
		if env.Client != nil {
			env.Client.Close()
		}
	}()
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
