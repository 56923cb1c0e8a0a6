package main

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// bashComplete loads the bash script and returns the completions of the
// command line words (the last one is the word being completed).
func bashComplete(t *testing.T, script string, words ...string) []string {
	t.Helper()
	var b strings.Builder
	b.WriteString(script)
	b.WriteString("\nCOMP_WORDS=(posfleet")
	for _, w := range words {
		b.WriteString(" '" + w + "'")
	}
	fmt.Fprintf(&b, ")\nCOMP_CWORD=%d\n_posfleet_complete\nprintf '%%s\\n' \"${COMPREPLY[@]}\"\n", len(words))
	out, err := exec.Command("bash", "-c", b.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}

func TestCompletionScripts(t *testing.T) {
	tree := commandTree()
	var paths []string
	tree.walk(func(n *cmdNode) {
		if n.path != "" {
			paths = append(paths, n.path)
		}
	})
	// The tree is the real one: every command, admin verb and simulator
	// command is in it.
	for name := range commands {
		if !slices.Contains(paths, name) {
			t.Errorf("command %q missing from the completion tree", name)
		}
	}
	for noun, verbs := range adminNouns {
		for verb := range verbs {
			if !slices.Contains(paths, "admin "+noun+" "+verb) {
				t.Errorf("admin %s %s missing from the completion tree", noun, verb)
			}
		}
	}
	for verb := range terminalVerbs {
		if !slices.Contains(paths, "terminal "+verb) {
			t.Errorf("terminal %s missing from the completion tree", verb)
		}
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out, code := runCLI(t, nil, "completion", sh)
		if code != 0 {
			t.Fatalf("completion %s: exit %d\n%s", sh, code, out)
		}
		for _, p := range paths {
			last := p[strings.LastIndex(p, " ")+1:]
			if !strings.Contains(out, last) {
				t.Errorf("completion %s does not mention %q", sh, p)
			}
		}
	}
	if out, code := runCLI(t, nil, "completion", "powershell"); code == 0 {
		t.Errorf("completion powershell succeeded:\n%s", out)
	}

	script, _ := runCLI(t, nil, "completion", "bash")
	// bash runs the script (CI itself runs under bash).
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"te"}, []string{"terminal"}},
		{[]string{"admin", "mer"}, []string{"merchants"}},
		{[]string{"admin", "merchants", ""}, []string{"archive", "create", "get", "list", "update"}},
		{[]string{"admin", "--target", "h:1", "--json", "ro"}, []string{"rollout"}},
		{[]string{"admin", "terminals", "get", "--i"}, []string{"--id"}},
		{[]string{"terminal", "pay", "--pre"}, []string{"--preauth"}},
		{[]string{"terminal", "--terminal-file", "t.json", "clo"}, []string{"close-batch"}},
		{[]string{"serve", "--tls-"}, []string{"--tls-cert", "--tls-key"}},
		{[]string{"completion", "f"}, []string{"fish"}},
	} {
		got := bashComplete(t, script, tc.words...)
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("completing posfleet %s: got %q, want %q", strings.Join(tc.words, " "), got, tc.want)
		}
	}
}
