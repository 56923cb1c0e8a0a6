package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/posfleet/posfleet/conformance"
)

// errNotConformant makes conformance exit with status 1 when the terminal
// failed a scenario; 2 stays for bad usage.
type errNotConformant struct{}

func (errNotConformant) Error() string { return "the terminal failed conformance (see the report)" }

// ExitCode implements exitCoder.
func (errNotConformant) ExitCode() int { return 1 }

func runConformance(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("conformance", stderr)
	def := conformance.DefaultOptions()
	listen := fs.String("listen", def.Listen, "loopback address the terminal under test connects to (plaintext gRPC)")
	timeout := fs.Duration("timeout", def.Timeout, "longest run; what the terminal did by then is graded")
	reportFile := fs.String("report", "", "also write the report to this file")
	scenarios := fs.String("scenarios", "all", "comma-separated scenario IDs to play ("+strings.Join(conformance.ScenarioIDs(), ", ")+"); \"all\", and \"-ID\" to leave one out, e.g. all,-rotation")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: posfleet conformance [flags] [--] [COMMAND [ARGS...]]

Plays scripted faults against a terminal under test and grades it: a lost
Register answer, a lost Authorize answer, an authorization never answered,
a connection recycled (GOAWAY) mid-Authorize, a rate limit with RetryInfo,
a config stream reset, a remote command delivered twice, a config to
reject, a config push, a credential rotation asked mid-stream (a
ROTATE_CREDENTIAL command), a refund of a reversed sale and a batch the
server closed under the terminal.
With COMMAND, runs it as the terminal with POSFLEET_TARGET, POSFLEET_SERIAL,
POSFLEET_ENROLLMENT_CODE, POSFLEET_MERCHANT_ID, POSFLEET_CURRENCY,
POSFLEET_PINNED_KEY and POSFLEET_ROTATE_CREDENTIAL (deprecated: the kit
asks with the command) set, and grades when it exits. Without, prints those values and grades at Ctrl-C or the timeout.
Exit status 0 when every scenario played passed, 1 otherwise.

flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlagsWithArgs(fs, args); err != nil {
		return err
	}
	opts := def
	opts.Listen, opts.Timeout = *listen, *timeout
	ids, err := conformance.ParseScenarios(*scenarios)
	if err != nil {
		return err
	}
	opts.Scenarios = ids
	command := fs.Args()
	opts.Ready = func(tg conformance.Target) {
		fmt.Fprintf(stderr, "conformance kit listening on %s\n  serial           %s\n  enrollment code  %s\n  merchant         %s (%s)\n  pinned key       %s\n  scenarios        %s\n",
			tg.Addr, tg.SerialNumber, tg.EnrollmentCode, tg.MerchantID, tg.Currency, hex.EncodeToString(tg.PinnedKey), strings.Join(opts.Scenarios, ","))
		if len(command) == 0 {
			fmt.Fprintf(stderr, "start the terminal under test now; press Ctrl-C when it is done (at most %v)\n", opts.Timeout)
		}
	}
	if len(command) > 0 {
		opts.Terminal = func(ctx context.Context, tg conformance.Target) error {
			cmd := exec.CommandContext(ctx, command[0], command[1:]...)
			cmd.Env = append(os.Environ(), tg.Env()...)
			cmd.Stdout, cmd.Stderr = stderr, stderr
			cmd.WaitDelay = 5 * time.Second
			return cmd.Run()
		}
	}
	rep, err := conformance.Run(ctx, opts, nil)
	if err != nil {
		return err
	}
	if err := rep.WriteText(stdout); err != nil {
		return err
	}
	if *reportFile != "" {
		f, err := os.OpenFile(*reportFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		werr := rep.WriteText(f)
		if err := f.Close(); werr == nil {
			werr = err
		}
		if werr != nil {
			return werr
		}
	}
	if !rep.Passed() {
		return errNotConformant{}
	}
	return nil
}

func init() {
	commands["conformance"] = command{"play scripted faults against a terminal under test and grade what it did", runConformance}
}
