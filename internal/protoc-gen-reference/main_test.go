package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// TestReferenceCoversThePackage checks the committed reference against the
// compiled protocol: every service, RPC, message and enum of posfleet.v1
// has its heading, every field and enum value its row. (CI's drift check
// regenerates the file and fails on any difference; this test says what
// is missing when the plugin skips something.)
func TestReferenceCoversThePackage(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", fileName))
	if err != nil {
		t.Fatal(err)
	}
	ref := string(doc)
	var files []protoreflect.FileDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage(pb.File_posfleet_v1_common_proto.Package(), func(f protoreflect.FileDescriptor) bool {
		files = append(files, f)
		return true
	})
	if len(files) < 5 {
		t.Fatalf("got %d files of the package, want every one of the protocol's", len(files))
	}
	want := func(s string) {
		t.Helper()
		if !strings.Contains(ref, s) {
			t.Errorf("reference lacks %q", s)
		}
	}
	enums := func(es protoreflect.EnumDescriptors) {
		for i := range es.Len() {
			e := es.Get(i)
			want("\n### " + name(e) + "\n")
			for j := range e.Values().Len() {
				want("\n| `" + string(e.Values().Get(j).Name()) + "` |")
			}
		}
	}
	var messages func(ms protoreflect.MessageDescriptors)
	messages = func(ms protoreflect.MessageDescriptors) {
		for i := range ms.Len() {
			m := ms.Get(i)
			if m.IsMapEntry() {
				continue
			}
			want("\n### " + name(m) + "\n")
			for j := range m.Fields().Len() {
				want("\n| `" + string(m.Fields().Get(j).Name()) + "` |")
			}
			enums(m.Enums())
			messages(m.Messages())
		}
	}
	for _, f := range files {
		for i := range f.Services().Len() {
			s := f.Services().Get(i)
			want("\n### " + string(s.FullName()) + "\n")
			for j := range s.Methods().Len() {
				want("\n#### " + string(s.Methods().Get(j).Name()) + "\n")
			}
		}
		enums(f.Enums())
		messages(f.Messages())
	}
}
