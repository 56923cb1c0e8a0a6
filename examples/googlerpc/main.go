// Command googlerpc writes the google.rpc status and error-detail messages
// (google/rpc/status.proto, google/rpc/error_details.proto) as a
// google.protobuf.FileDescriptorSet, taken from the googleapis Go module
// this repository already depends on. Example terminals in languages whose
// packages lack these messages generate their code from it with protoc's
// --descriptor_set_in, so no copy of the .proto files is kept here.
//
// Usage:
//
//	go run ./examples/googlerpc > googlerpc.binpb
package main

import (
	"fmt"
	"os"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

func main() {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	// add appends f after its imports, as protoc expects.
	var add func(f protoreflect.FileDescriptor)
	add = func(f protoreflect.FileDescriptor) {
		if seen[f.Path()] {
			return
		}
		seen[f.Path()] = true
		imports := f.Imports()
		for i := range imports.Len() {
			add(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(f))
	}
	add(status.File_google_rpc_status_proto)
	add(errdetails.File_google_rpc_error_details_proto)
	b, err := proto.Marshal(set)
	if err != nil {
		fmt.Fprintln(os.Stderr, "googlerpc:", err)
		os.Exit(1)
	}
	if _, err := os.Stdout.Write(b); err != nil {
		fmt.Fprintln(os.Stderr, "googlerpc:", err)
		os.Exit(1)
	}
}
