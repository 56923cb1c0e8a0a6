// Command protoc-gen-reference is a protoc plugin that writes the posfleet
// protocol reference, docs/protocol-reference.md, from the .proto files'
// comments: every service with its RPCs and who may call them, every
// message with its fields, every enum with its values. `go tool buf
// generate` runs it (buf.gen.yaml), so the reference is regenerated with
// the code and CI fails when it drifts.
package main

import (
	"fmt"
	"os"
	"strings"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// fileName is the generated file, relative to the plugin's out directory.
const fileName = "protocol-reference.md"

func main() {
	protogen.Options{}.Run(func(gen *protogen.Plugin) error {
		gen.SupportedFeatures = uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL)
		var files []*protogen.File
		for _, f := range gen.Files {
			if f.Generate {
				files = append(files, f)
			}
		}
		if len(files) == 0 {
			fmt.Fprintln(os.Stderr, "protoc-gen-reference: no files to document")
			return nil
		}
		g := gen.NewGeneratedFile(fileName, "")
		g.P(render(files))
		return nil
	})
}

// render returns the reference of files: services first (the RPCs a client
// calls), then each file's messages and enums.
func render(files []*protogen.File) string {
	var b strings.Builder
	b.WriteString("# posfleet protocol reference\n\n")
	b.WriteString("<!-- Generated from proto/ by internal/protoc-gen-reference (go tool buf generate). Do not edit. -->\n\n")
	b.WriteString("Package `" + string(files[0].Desc.Package()) + "`. The `.proto` files are the source of this page; ")
	b.WriteString("their comments are quoted here as written. Error reasons, retry rules and deadlines are in ")
	b.WriteString("[ErrorReason](#errorreason) and the service descriptions; the gRPC service config that encodes the ")
	b.WriteString("retry rules is `proto/posfleet/v1/service_config.json`.\n\n")

	b.WriteString("## Services\n\n")
	for _, f := range files {
		for _, s := range f.Services {
			writeService(&b, s)
		}
	}
	for _, f := range files {
		if len(f.Messages) == 0 && len(f.Enums) == 0 {
			continue
		}
		fmt.Fprintf(&b, "## %s\n\n", f.Desc.Path())
		// The syntax statement's leading comment is the file's doc.
		writeComment(&b, protogen.Comments(f.Desc.SourceLocations().ByPath(protoreflect.SourcePath{12}).LeadingComments))
		for _, e := range f.Enums {
			writeEnum(&b, e)
		}
		for _, m := range f.Messages {
			writeMessage(&b, m)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

func writeService(b *strings.Builder, s *protogen.Service) {
	fmt.Fprintf(b, "### %s\n\n", s.Desc.FullName())
	writeComment(b, s.Comments.Leading)
	for _, m := range s.Methods {
		stream := ""
		if m.Desc.IsStreamingServer() {
			stream = "stream "
		}
		fmt.Fprintf(b, "#### %s\n\nrpc %s(%s) returns (%s%s)\n\n", m.Desc.Name(), m.Desc.Name(),
			link(m.Input.Desc), stream, link(m.Output.Desc))
		if a := access(m.Desc); a != "" {
			fmt.Fprintf(b, "Access: %s.\n\n", a)
		}
		writeComment(b, m.Comments.Leading)
	}
}

// access describes the method's posfleet.v1.access option.
func access(m protoreflect.MethodDescriptor) string {
	opts, ok := m.Options().(*descriptorpb.MethodOptions)
	if !ok || !proto.HasExtension(opts, pb.E_Access) {
		return ""
	}
	a := proto.GetExtension(opts, pb.E_Access).(*pb.Access)
	switch a.GetCredential() {
	case pb.Credential_CREDENTIAL_NONE:
		return "no credential"
	case pb.Credential_CREDENTIAL_TERMINAL:
		if a.GetAllowSuspended() {
			return "terminal credential (a suspended terminal too)"
		}
		return "terminal credential"
	case pb.Credential_CREDENTIAL_ADMIN_TOKEN:
		return "admin token, least role `" + a.GetLeastRole().String() + "`"
	}
	return a.GetCredential().String()
}

func writeMessage(b *strings.Builder, m *protogen.Message) {
	if m.Desc.IsMapEntry() {
		return
	}
	fmt.Fprintf(b, "### %s\n\n", name(m.Desc))
	writeComment(b, m.Comments.Leading)
	if len(m.Fields) > 0 {
		b.WriteString("| Field | Type | Description |\n|---|---|---|\n")
		for _, f := range m.Fields {
			fmt.Fprintf(b, "| `%s` | %s | %s |\n", f.Desc.Name(), fieldType(f), cell(f.Comments.Leading))
		}
		b.WriteString("\n")
	}
	for _, e := range m.Enums {
		writeEnum(b, e)
	}
	for _, n := range m.Messages {
		writeMessage(b, n)
	}
}

func writeEnum(b *strings.Builder, e *protogen.Enum) {
	fmt.Fprintf(b, "### %s\n\n", name(e.Desc))
	writeComment(b, e.Comments.Leading)
	b.WriteString("| Value | Number | Description |\n|---|---|---|\n")
	for _, v := range e.Values {
		fmt.Fprintf(b, "| `%s` | %d | %s |\n", v.Desc.Name(), v.Desc.Number(), cell(v.Comments.Leading))
	}
	b.WriteString("\n")
}

// name is a message's or enum's name within its package ("Outer.Inner"),
// which is also its heading and anchor.
func name(d protoreflect.Descriptor) string {
	return strings.TrimPrefix(string(d.FullName()), string(d.ParentFile().Package())+".")
}

// link names a message and links to its heading when it is documented
// here (a message of this package); other packages' types are named in
// full.
func link(d protoreflect.Descriptor) string {
	if d.ParentFile().Package() != pb.File_posfleet_v1_common_proto.Package() {
		return "`" + string(d.FullName()) + "`"
	}
	n := name(d)
	return "[" + n + "](#" + strings.ToLower(strings.ReplaceAll(n, ".", "")) + ")"
}

func fieldType(f *protogen.Field) string {
	d := f.Desc
	if d.IsMap() {
		return "map&lt;" + kind(d.MapKey()) + ", " + kind(d.MapValue()) + "&gt;"
	}
	t := kind(d)
	switch {
	case d.IsList():
		t = "repeated " + t
	case d.HasOptionalKeyword():
		t = "optional " + t
	}
	return t
}

func kind(d protoreflect.FieldDescriptor) string {
	switch d.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return link(d.Message())
	case protoreflect.EnumKind:
		return link(d.Enum())
	}
	return d.Kind().String()
}

// writeComment writes a leading comment as a paragraph block, keeping its
// line breaks (comments hold lists and examples), or nothing.
func writeComment(b *strings.Builder, c protogen.Comments) {
	lines := commentLines(c)
	if len(lines) == 0 {
		return
	}
	for _, l := range lines {
		if l == "" {
			b.WriteString("\n")
			continue
		}
		// Two trailing spaces keep the comment's line breaks in Markdown.
		b.WriteString(l + "  \n")
	}
	b.WriteString("\n")
}

// cell writes a comment on one line, for a table cell.
func cell(c protogen.Comments) string {
	return strings.ReplaceAll(strings.Join(commentLines(c), " "), "|", "\\|")
}

// commentLines returns a comment's lines without the comment markers, the
// buf lint directives and trailing blank lines.
func commentLines(c protogen.Comments) []string {
	var out []string
	for l := range strings.SplitSeq(strings.TrimRight(string(c), "\n"), "\n") {
		l = strings.TrimPrefix(l, " ")
		if strings.HasPrefix(l, "buf:lint:") {
			continue
		}
		out = append(out, strings.TrimRight(l, " "))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	if len(out) == 1 && out[0] == "" {
		return nil
	}
	return out
}
