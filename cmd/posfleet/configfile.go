package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A config file is a YAML mapping from flag names to values, e.g.
//
//	listen: 0.0.0.0:7400
//	data-dir: /var/lib/posfleet
//	shutdown-grace: 30s
//
// It is the third source of a command's settings: a flag on the command line
// wins over its POSFLEET_* environment twin, which wins over the file, which
// wins over the default. Every flag of the command may appear in it, except
// those in notInFile; any other key is refused, so a typo is not silently
// ignored.

// settingSource says where a flag's effective value came from.
type settingSource string

const (
	fromDefault settingSource = "default"
	fromFile    settingSource = "file"
	fromEnvOrCL settingSource = "flag or environment"
)

// applyConfigFile sets, from the YAML file at path, every flag of fs that was
// not set on the command line or by its environment twin. Keys naming no
// flag of fs, or one of notInFile, are refused, as are values that are not
// scalars or that the flag does not accept. It returns the names of the
// flags it set.
func applyConfigFile(fs *flag.FlagSet, path string, notInFile map[string]bool) (map[string]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return map[string]bool{}, nil // an empty file sets nothing
		}
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config file %s: holds more than one YAML document", path)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config file %s: want a mapping of setting names to values", path)
	}
	set, applied := map[string]bool{}, map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		name := k.Value
		f := fs.Lookup(name)
		switch {
		case f == nil || notInFile[name]:
			return nil, fmt.Errorf("config file %s, line %d: unknown setting %q", path, k.Line, name)
		case set[name]:
			return nil, fmt.Errorf("config file %s, line %d: %q given twice", path, k.Line, name)
		case v.Kind != yaml.ScalarNode:
			return nil, fmt.Errorf("config file %s, line %d: %q wants a single value", path, v.Line, name)
		}
		set[name] = true
		if isFlagSet(fs, name) {
			continue // the command line or the environment wins
		}
		if err := fs.Set(name, v.Value); err != nil {
			return nil, fmt.Errorf("config file %s, line %d: %s: %w", path, v.Line, name, err)
		}
		applied[name] = true
	}
	return applied, nil
}

// printConfig writes the effective settings of fs as a YAML config file that
// loads back to the same settings, each with a comment saying where its value
// came from (fileSet: the flags the config file set). Flags in notInFile are left out; values of flags in secret are
// redacted, as is the password of any URL.
func printConfig(w io.Writer, fs *flag.FlagSet, fileSet map[string]bool, notInFile, secret map[string]bool) error {
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if !notInFile[f.Name] {
			names = append(names, f.Name)
		}
	})
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		f := fs.Lookup(name)
		src := fromDefault
		switch {
		case fileSet[name]:
			src = fromFile
		case isFlagSet(fs, name):
			src = fromEnvOrCL
		}
		val := f.Value.String()
		if secret[name] && val != "" {
			val = "REDACTED"
		} else {
			val = redactURL(val)
		}
		node := yaml.Node{Kind: yaml.ScalarNode, Value: val}
		if val == "" {
			node.Style = yaml.DoubleQuotedStyle
		}
		out, err := yaml.Marshal(&node)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s: %s  # %s\n", name, strings.TrimSuffix(string(out), "\n"), src)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// redactURL hides the password of a URL with user information, e.g. a
// database URL; anything else is returned as it is.
func redactURL(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); !ok {
		return s
	}
	return u.Redacted()
}
