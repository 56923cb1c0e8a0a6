package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Shell completion: "posfleet completion bash|zsh|fish" prints a script
// generated from the command tree itself, so that a new command or flag
// completes without anyone editing a script. Flags are learned by running
// each command with -h, which parses nothing else and dials nothing.

func init() {
	// Registered here: the command table cannot refer to a function that
	// reads the table.
	commands["completion"] = command{"print a shell completion script: bash, zsh or fish", runCompletion}
}

// cmdNode is one command of the tree: a path such as "admin merchants
// create", its summary, its flags (without dashes) and its subcommands.
type cmdNode struct {
	path     string
	summary  string
	flags    []string
	switches []string // the flags that take no value (booleans)
	children []*cmdNode
}

// flagLine matches a flag in flag.PrintDefaults output: "  -name type" for
// a flag with a value, "  -name" alone (or a one-letter name followed by a
// tab) for a boolean.
var flagLine = regexp.MustCompile(`(?m)^  -([A-Za-z0-9][A-Za-z0-9-]*)( [a-z]+)?$`)

// helpFlags runs a command with -h and sets n's flags from its help.
func (n *cmdNode) helpFlags(run func(stderr io.Writer) error) {
	var help bytes.Buffer
	run(&help) // -h: the help is the point, the error is flag.ErrHelp
	for _, m := range flagLine.FindAllStringSubmatch(help.String(), -1) {
		if slices.Contains(n.flags, m[1]) {
			continue
		}
		n.flags = append(n.flags, m[1])
		if m[2] == "" {
			n.switches = append(n.switches, m[1])
		}
	}
}

// commandTree returns the whole command tree under "posfleet".
func commandTree() *cmdNode {
	ctx := context.Background()
	root := &cmdNode{path: ""}
	for _, name := range slices.Sorted(maps.Keys(commands)) {
		cmd := commands[name]
		n := &cmdNode{path: name, summary: cmd.summary}
		switch name {
		case "completion":
			for _, sh := range []string{"bash", "zsh", "fish"} {
				n.children = append(n.children, &cmdNode{path: "completion " + sh, summary: sh + " completion script"})
			}
		case "admin":
			n.helpFlags(func(w io.Writer) error { return runAdmin(ctx, []string{"-h"}, io.Discard, w) })
			n.children = adminTree(ctx)
		case "terminal":
			n.helpFlags(func(w io.Writer) error { return runTerminal(ctx, []string{"-h"}, io.Discard, w) })
			for _, v := range slices.Sorted(maps.Keys(terminalVerbs)) {
				c := &cmdNode{path: "terminal " + v, summary: terminalVerbs[v].summary}
				c.helpFlags(func(w io.Writer) error { return runTerminal(ctx, []string{v, "-h"}, io.Discard, w) })
				n.children = append(n.children, c)
			}
		default:
			n.helpFlags(func(w io.Writer) error { return cmd.run(ctx, []string{"-h"}, io.Discard, w) })
		}
		root.children = append(root.children, n)
	}
	return root
}

func adminTree(ctx context.Context) []*cmdNode {
	var nouns []*cmdNode
	for _, noun := range slices.Sorted(maps.Keys(adminNouns)) {
		n := &cmdNode{path: "admin " + noun, summary: "operator commands: " + noun}
		for _, verb := range slices.Sorted(maps.Keys(adminNouns[noun])) {
			v := adminNouns[noun][verb]
			c := &cmdNode{path: "admin " + noun + " " + verb, summary: v.summary}
			c.helpFlags(func(w io.Writer) error {
				env := &adminEnv{Out: io.Discard, Err: w, conn: adminConnFlags{timeout: 15 * time.Second}}
				return v.run(ctx, env, []string{"-h"})
			})
			n.children = append(n.children, c)
		}
		nouns = append(nouns, n)
	}
	return nouns
}

// walk calls fn for n and every node below it.
func (n *cmdNode) walk(fn func(*cmdNode)) {
	fn(n)
	for _, c := range n.children {
		c.walk(fn)
	}
}

func (n *cmdNode) childNames() []string {
	var out []string
	for _, c := range n.children {
		out = append(out, c.path[strings.LastIndex(c.path, " ")+1:])
	}
	return out
}

func runCompletion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("completion", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: posfleet completion bash|zsh|fish\n\n"+
			"  bash: source <(posfleet completion bash)        (or save it in /etc/bash_completion.d/posfleet)\n"+
			"  zsh:  source <(posfleet completion zsh)         (in ~/.zshrc)\n"+
			"  fish: posfleet completion fish > ~/.config/fish/completions/posfleet.fish")
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	tree := commandTree()
	switch pos[0] {
	case "bash":
		_, err = io.WriteString(stdout, bashCompletion(tree))
	case "zsh":
		_, err = io.WriteString(stdout, "#compdef posfleet\n# zsh completion for posfleet, through zsh's bash completion support.\nautoload -U +X bashcompinit && bashcompinit\n"+bashCompletion(tree))
	case "fish":
		_, err = io.WriteString(stdout, fishCompletion(tree))
	default:
		fs.Usage()
		return errUsage
	}
	return err
}

// bashCompletion completes the subcommand words typed so far (flags and
// their values are skipped) with the next subcommands, or with the
// command's flags when the word starts with "-".
func bashCompletion(tree *cmdNode) string {
	var b strings.Builder
	b.WriteString(`# bash completion for posfleet, generated by 'posfleet completion bash'.
_posfleet_complete() {
  local cur="${COMP_WORDS[COMP_CWORD]}" prev="" name w key="" words="" flags=""
  local i
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${COMP_WORDS[i]}"
    if [[ $w == -* ]]; then prev="$w"; continue; fi
    # A word after a flag that takes a value is that value.
    name="${prev#-}"; name="${name#-}"
    if [[ -n $prev && $prev != *=* && " $(_posfleet_switches "$key") " != *" $name "* ]]; then prev=""; continue; fi
    prev=""
    key="${key:+$key }$w"
  done
  case "$key" in
`)
	tree.walk(func(n *cmdNode) {
		fmt.Fprintf(&b, "    %q) words=%q; flags=%q ;;\n", n.path, strings.Join(n.childNames(), " "), dashed(n.flags))
	})
	b.WriteString(`  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
  fi
}
# _posfleet_switches KEY: the flags of command KEY that take no value.
_posfleet_switches() {
  case "$1" in
`)
	tree.walk(func(n *cmdNode) {
		fmt.Fprintf(&b, "    %q) echo %q ;;\n", n.path, "h help "+strings.Join(n.switches, " "))
	})
	b.WriteString(`  esac
}
complete -o default -F _posfleet_complete posfleet
`)
	return b.String()
}

func dashed(flags []string) string {
	out := make([]string, len(flags))
	for i, f := range flags {
		out[i] = "--" + f
	}
	return strings.Join(out, " ")
}

// fishCompletion offers each command's subcommands once its parent path
// has been typed, and its flags.
func fishCompletion(tree *cmdNode) string {
	var b strings.Builder
	b.WriteString("# fish completion for posfleet, generated by 'posfleet completion fish'.\n" +
		"function __posfleet_path\n" +
		"    set -l words (commandline -opc)\n" +
		"    set -e words[1]\n" +
		"    string join ' ' (string match -v -- '-*' $words)\n" +
		"end\n" +
		"complete -c posfleet -f\n")
	tree.walk(func(n *cmdNode) {
		cond := fmt.Sprintf("test (__posfleet_path) = %s", fishQuote(n.path))
		for _, c := range n.children {
			fmt.Fprintf(&b, "complete -c posfleet -n %s -a %s -d %s\n", fishQuote(cond), fishQuote(c.path[strings.LastIndex(c.path, " ")+1:]), fishQuote(c.summary))
		}
		for _, f := range n.flags {
			fmt.Fprintf(&b, "complete -c posfleet -n %s -l %s\n", fishQuote(cond), f)
		}
	})
	return b.String()
}

// fishQuote quotes s for fish: single quotes, with \ and ' escaped.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
