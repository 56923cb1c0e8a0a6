package server

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/auth"
)

// protoPackage is the proto package whose services carry the
// (posfleet.v1.access) method option.
const protoPackage = "posfleet.v1"

// foreignPublic are the methods served beside posfleet's own that come from
// other proto packages (health checking, reflection). They carry no posfleet
// options and need no credential.
var foreignPublic = []string{
	"/grpc.health.v1.Health/Check",
	"/grpc.health.v1.Health/Watch",
	"/grpc.health.v1.Health/List",
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
}

// methodAccess is the least-privilege table for every RPC, read once from
// the (posfleet.v1.access) option of each method of the posfleet services
// registered by the generated code. A method missing from it (no option, or
// an option without a credential kind) is refused with PermissionDenied, so
// a new RPC is closed until its access is written in the proto.
var methodAccess = accessTable(protoregistry.GlobalFiles)

// accessTable reads the access option of every method of every service in
// protoPackage, plus foreignPublic.
func accessTable(files *protoregistry.Files) map[string]access {
	table := make(map[string]access)
	for _, m := range foreignPublic {
		table[m] = access{public: true}
	}
	for _, sd := range services(files) {
		methods := sd.Methods()
		for i := range methods.Len() {
			md := methods.Get(i)
			if need, ok := accessOf(md); ok {
				table[fullMethod(md)] = need
			}
		}
	}
	return table
}

// services returns the service descriptors of protoPackage in files.
func services(files *protoregistry.Files) []protoreflect.ServiceDescriptor {
	var out []protoreflect.ServiceDescriptor
	files.RangeFilesByPackage(protoPackage, func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			out = append(out, fd.Services().Get(i))
		}
		return true
	})
	return out
}

// fullMethod is a method's gRPC name, "/package.Service/Method".
func fullMethod(md protoreflect.MethodDescriptor) string {
	return fmt.Sprintf("/%s/%s", md.Parent().FullName(), md.Name())
}

// accessOf converts a method's access option; ok is false when the method
// has none or it names no usable credential kind.
func accessOf(md protoreflect.MethodDescriptor) (access, bool) {
	opts := md.Options()
	if !proto.HasExtension(opts, pb.E_Access) {
		return access{}, false
	}
	a, _ := proto.GetExtension(opts, pb.E_Access).(*pb.Access)
	switch a.GetCredential() {
	case pb.Credential_CREDENTIAL_NONE:
		return access{public: true}, true
	case pb.Credential_CREDENTIAL_TERMINAL:
		return access{terminal: true, allowSuspended: a.GetAllowSuspended()}, true
	case pb.Credential_CREDENTIAL_ADMIN_TOKEN:
		role := roleOf(a.GetLeastRole())
		return access{role: role}, role != auth.RoleNone
	default:
		return access{}, false
	}
}

// roleOf maps a proto role to an auth role (RoleNone for an unknown one,
// which refuses every caller).
func roleOf(r pb.Role) auth.Role {
	switch r {
	case pb.Role_ROLE_AUDITOR:
		return auth.RoleAuditor
	case pb.Role_ROLE_OPERATOR:
		return auth.RoleOperator
	case pb.Role_ROLE_ADMIN:
		return auth.RoleAdmin
	default:
		return auth.RoleNone
	}
}
