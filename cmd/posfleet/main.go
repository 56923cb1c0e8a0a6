// Command posfleet is the posfleet server, its operator CLI and its load
// generator in one binary.
//
//	posfleet serve [flags]        run the server
//	posfleet admin <noun> <verb>  operator commands
//	posfleet loadgen [flags]      simulate a fleet and measure latency
//	posfleet terminal <command>   act as one payment terminal (demos, onboarding)
//	posfleet backup|restore       copy the data directory to or from a file
//	posfleet version              print the version and build
//	posfleet completion bash|zsh|fish  print a shell completion script
//
// Every flag has a POSFLEET_* environment twin (--data-dir is
// POSFLEET_DATA_DIR); a flag given on the command line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"syscall"
)

// command is one subcommand. run gets the arguments after the subcommand's
// name and returns an error to print; errUsage prints nothing more.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"serve":         {"run the server", runServe},
	"admin":         {"operator commands: merchants, stores, terminals, config, rollouts, reports, audit, tokens", runAdmin},
	"loadgen":       {"simulate a fleet (or drive the health check) and measure latency", runLoadgen},
	"version":       {"print the version", runVersion},
	"backup":        {"write a backup: of a stopped server's data directory, or of a running server with --target", runBackup},
	"restore":       {"load a backup into an empty data directory", runRestore},
	"verify":        {"scan a stopped server's data directory for damage", runVerify},
	"migrate":       {"apply the pending schema migrations to a PostgreSQL database (--database-url)", runMigrate},
	"migrate-store": {"copy a stopped server's Badger data directory into an empty PostgreSQL database, and check the copy", runMigrateStore},
	"terminal":      {"act as a payment terminal: register, heartbeat, watch, pay, reverse, refund, close-batch", runTerminal},
}

// errUsage reports bad usage that has already been explained to the user.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "posfleet: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err := cmd.run(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if !errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "posfleet %s: %s\n", args[0], humanError(err))
		}
		var ec exitCoder
		if errors.As(err, &ec) {
			return ec.ExitCode()
		}
		return 1
	}
	return 0
}

// exitCoder is an error that chooses the process exit status.
type exitCoder interface{ ExitCode() int }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: posfleet <command> [flags]\n\ncommands:")
	for _, n := range slices.Sorted(maps.Keys(commands)) {
		fmt.Fprintf(w, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'posfleet <command> -h' for a command's flags. Every flag has a POSFLEET_* environment twin.")
}
