package server

import (
	"bytes"
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/posfleet/posfleet/internal/docgen"
	"github.com/posfleet/posfleet/server/auth"
)

var update = flag.Bool("update", false, "rewrite the README's generated sections instead of failing on drift")

// roleMatrix renders who may call each RPC, from the access options, as a
// Markdown table.
func roleMatrix(files *protoregistry.Files) []byte {
	var b bytes.Buffer
	b.WriteString("| RPC | credential | allowed roles |\n|---|---|---|\n")
	svcs := services(files)
	slices.SortFunc(svcs, func(a, b protoreflect.ServiceDescriptor) int {
		return strings.Compare(string(a.Name()), string(b.Name()))
	})
	for _, sd := range svcs {
		for i := range sd.Methods().Len() {
			md := sd.Methods().Get(i)
			cred, roles := "refused (no access option)", ""
			if a, ok := accessOf(md); ok {
				cred, roles = describeAccess(a)
			}
			fmt.Fprintf(&b, "| `%s.%s` | %s | %s |\n", sd.Name(), md.Name(), cred, roles)
		}
	}
	b.WriteString("| health checking, reflection | none | |\n")
	return b.Bytes()
}

// describeAccess words an access entry for the matrix.
func describeAccess(a access) (credential, roles string) {
	switch {
	case a.public:
		return "none", ""
	case a.terminal && a.allowSuspended:
		return "terminal (also when suspended)", ""
	case a.terminal:
		return "terminal", ""
	}
	var allowed []string
	for _, r := range []auth.Role{auth.RoleAuditor, auth.RoleOperator, auth.RoleAdmin} {
		if r.Allows(a.role) {
			allowed = append(allowed, "`"+r.String()+"`")
		}
	}
	return "admin token", strings.Join(allowed, ", ")
}

// The README's role matrix is generated from the access options; run
// `go test ./server/ -run TestREADMERoleMatrix -update` after changing one.
func TestREADMERoleMatrix(t *testing.T) {
	if err := docgen.Check("../README.md", "roles", roleMatrix(protoregistry.GlobalFiles), *update); err != nil {
		t.Error(err)
	}
}
