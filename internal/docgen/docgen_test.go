package docgen_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/posfleet/posfleet/internal/docgen"
)

const doc = `# Title

<!-- BEGIN GENERATED: t -->
old line
<!-- END GENERATED: t -->

tail
`

func TestReplace(t *testing.T) {
	tests := []struct {
		name, section, body, want string
		err                       error
	}{
		{name: "replaces the body", section: "t", body: "a\nb\n",
			want: "# Title\n\n<!-- BEGIN GENERATED: t -->\na\nb\n<!-- END GENERATED: t -->\n\ntail\n"},
		{name: "adds the last newline", section: "t", body: "a",
			want: "# Title\n\n<!-- BEGIN GENERATED: t -->\na\n<!-- END GENERATED: t -->\n\ntail\n"},
		{name: "empty body", section: "t", body: "",
			want: "# Title\n\n<!-- BEGIN GENERATED: t -->\n<!-- END GENERATED: t -->\n\ntail\n"},
		{name: "unknown section", section: "u", body: "a", err: docgen.ErrNoSection},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := docgen.Replace([]byte(doc), tt.section, []byte(tt.body))
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if string(got) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
	if _, err := docgen.Replace([]byte("<!-- BEGIN GENERATED: t -->\nx\n"), "t", nil); !errors.Is(err, docgen.ErrNoSection) {
		t.Errorf("missing end marker: err = %v, want ErrNoSection", err)
	}
}

func TestCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "README.md")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := docgen.Check(path, "t", []byte("old line\n"), false); err != nil {
		t.Errorf("up to date: %v", err)
	}
	if err := docgen.Check(path, "t", []byte("new line\n"), false); err == nil {
		t.Error("drift not reported")
	}
	if err := docgen.Check(path, "t", []byte("new line\n"), true); err != nil {
		t.Fatalf("update: %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := docgen.Section(got, "t")
	if err != nil {
		t.Fatal(err)
	}
	if string(sec) != "new line\n" {
		t.Errorf("after update section = %q, want %q", sec, "new line\n")
	}
	if err := docgen.Check(path, "t", []byte("new line\n"), false); err != nil {
		t.Errorf("after update: %v", err)
	}
}
