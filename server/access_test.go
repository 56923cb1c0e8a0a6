package server

import (
	"log/slog"
	"maps"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/auth"
)

// accessBeforeOptions is the access table as it was written in Go before the
// proto's (posfleet.v1.access) options drove it. The table read from the
// options must grant exactly the same.
var accessBeforeOptions = map[string]access{
	"/grpc.health.v1.Health/Check":                                   {public: true},
	"/grpc.health.v1.Health/Watch":                                   {public: true},
	"/grpc.health.v1.Health/List":                                    {public: true},
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      {public: true},
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": {public: true},

	terminalSvc + "Register":         {public: true},
	terminalSvc + "Heartbeat":        {terminal: true},
	terminalSvc + "WatchConfig":      {terminal: true},
	terminalSvc + "AckConfig":        {terminal: true},
	terminalSvc + "VerifyMerchant":   {terminal: true},
	terminalSvc + "RotateCredential": {terminal: true},
	terminalSvc + "AckCommand":       {terminal: true},

	paymentSvc + "Authorize":    {terminal: true, allowSuspended: true},
	paymentSvc + "Reverse":      {terminal: true, allowSuspended: true},
	paymentSvc + "Refund":       {terminal: true, allowSuspended: true},
	paymentSvc + "CloseBatch":   {terminal: true, allowSuspended: true},
	paymentSvc + "Capture":      {terminal: true, allowSuspended: true},
	paymentSvc + "GetOpenBatch": {terminal: true, allowSuspended: true},

	adminSvc + "CreateMerchant":      {role: auth.RoleOperator},
	adminSvc + "GetMerchant":         {role: auth.RoleAuditor},
	adminSvc + "UpdateMerchant":      {role: auth.RoleOperator},
	adminSvc + "ListMerchants":       {role: auth.RoleAuditor},
	adminSvc + "CreateStore":         {role: auth.RoleOperator},
	adminSvc + "ListStores":          {role: auth.RoleAuditor},
	adminSvc + "ProvisionTerminal":   {role: auth.RoleOperator},
	adminSvc + "GetTerminal":         {role: auth.RoleAuditor},
	adminSvc + "ListTerminals":       {role: auth.RoleAuditor},
	adminSvc + "SuspendTerminal":     {role: auth.RoleOperator},
	adminSvc + "ReactivateTerminal":  {role: auth.RoleOperator},
	adminSvc + "RetireTerminal":      {role: auth.RoleOperator},
	adminSvc + "ReissueEnrollment":   {role: auth.RoleOperator},
	adminSvc + "RebindTerminal":      {role: auth.RoleOperator},
	adminSvc + "SendCommand":         {role: auth.RoleOperator},
	adminSvc + "ListCommands":        {role: auth.RoleAuditor},
	adminSvc + "PublishConfig":       {role: auth.RoleOperator},
	adminSvc + "GetEffectiveConfig":  {role: auth.RoleAuditor},
	adminSvc + "GetRollout":          {role: auth.RoleAuditor},
	adminSvc + "ListRollouts":        {role: auth.RoleAuditor},
	adminSvc + "PauseRollout":        {role: auth.RoleOperator},
	adminSvc + "ResumeRollout":       {role: auth.RoleOperator},
	adminSvc + "AbortRollout":        {role: auth.RoleOperator},
	adminSvc + "GetConfigLayer":      {role: auth.RoleAuditor},
	adminSvc + "ListConfigVersions":  {role: auth.RoleAuditor},
	adminSvc + "DiffConfigVersions":  {role: auth.RoleAuditor},
	adminSvc + "RollbackConfig":      {role: auth.RoleOperator},
	adminSvc + "AdvanceRollout":      {role: auth.RoleOperator},
	adminSvc + "GetFleetReport":      {role: auth.RoleAuditor},
	adminSvc + "ListAuditEvents":     {role: auth.RoleAuditor},
	adminSvc + "ListTransactions":    {role: auth.RoleAuditor},
	adminSvc + "GetSettlementReport": {role: auth.RoleAuditor},
	adminSvc + "CreateAdminToken":    {role: auth.RoleAdmin},
	adminSvc + "RevokeAdminToken":    {role: auth.RoleAdmin},
	adminSvc + "ListAdminTokens":     {role: auth.RoleAdmin},
	adminSvc + "Backup":              {role: auth.RoleAdmin},
	adminSvc + "ArchiveMerchant":     {role: auth.RoleOperator},
	adminSvc + "ArchiveStore":        {role: auth.RoleOperator},

	// Webhooks: secrets and targets are ADMIN's; status is readable.
	adminSvc + "CreateWebhook":         {role: auth.RoleAdmin},
	adminSvc + "GetWebhook":            {role: auth.RoleAuditor},
	adminSvc + "ListWebhooks":          {role: auth.RoleAuditor},
	adminSvc + "UpdateWebhook":         {role: auth.RoleAdmin},
	adminSvc + "DeleteWebhook":         {role: auth.RoleAdmin},
	adminSvc + "RotateWebhookSecret":   {role: auth.RoleAdmin},
	adminSvc + "RedeliverWebhookEvent": {role: auth.RoleAdmin},
	adminSvc + "ListWebhookDeliveries": {role: auth.RoleAuditor},
	adminSvc + "WhoAmI":                {role: auth.RoleAuditor},
	terminalSvc + "GetSigningKeys":     {terminal: true},
	adminSvc + "RotateSigningKey":      {role: auth.RoleAdmin},
}

func TestAccessFromOptionsEqualsTheWrittenTable(t *testing.T) {
	for _, m := range slices.Sorted(maps.Keys(accessBeforeOptions)) {
		got, ok := methodAccess[m]
		if !ok {
			t.Errorf("%s: missing from the table read from the options", m)
			continue
		}
		if want := accessBeforeOptions[m]; got != want {
			t.Errorf("%s: got %+v, want %+v", m, got, want)
		}
	}
	for _, m := range slices.Sorted(maps.Keys(methodAccess)) {
		if _, ok := accessBeforeOptions[m]; !ok {
			t.Errorf("%s: in the table read from the options, not in the written one", m)
		}
	}
}

// Every method the gRPC server serves has an access entry: none is left
// refused by a forgotten option.
func TestEveryServedMethodHasAccess(t *testing.T) {
	s, err := New(DefaultConfig(t.TempDir()), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	n := 0
	for svc, info := range s.grpc.GetServiceInfo() {
		for _, m := range info.Methods {
			n++
			if _, ok := methodAccess["/"+svc+"/"+m.Name]; !ok {
				t.Errorf("/%s/%s is served but has no access entry", svc, m.Name)
			}
		}
	}
	if n < len(accessBeforeOptions) {
		t.Errorf("served %d methods, want at least %d", n, len(accessBeforeOptions))
	}
}

// A method without the option, or with one that names no credential kind or
// no role, gets no entry and is refused.
func TestAccessTableLeavesOutMethodsWithoutUsableOption(t *testing.T) {
	withAccess := func(a *pb.Access) *descriptorpb.MethodOptions {
		o := &descriptorpb.MethodOptions{}
		proto.SetExtension(o, pb.E_Access, a)
		return o
	}
	method := func(name string, o *descriptorpb.MethodOptions) *descriptorpb.MethodDescriptorProto {
		return &descriptorpb.MethodDescriptorProto{
			Name: proto.String(name), InputType: proto.String(".posfleet.v1.Probe"),
			OutputType: proto.String(".posfleet.v1.Probe"), Options: o,
		}
	}
	fdp := &descriptorpb.FileDescriptorProto{
		Name:        proto.String("probe.proto"),
		Package:     proto.String(protoPackage),
		Syntax:      proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("Probe")}},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name: proto.String("ProbeService"),
			Method: []*descriptorpb.MethodDescriptorProto{
				method("NoOption", nil),
				method("NoCredential", withAccess(&pb.Access{LeastRole: pb.Role_ROLE_ADMIN})),
				method("AdminWithoutRole", withAccess(&pb.Access{Credential: pb.Credential_CREDENTIAL_ADMIN_TOKEN})),
				method("Public", withAccess(&pb.Access{Credential: pb.Credential_CREDENTIAL_NONE})),
				method("Terminal", withAccess(&pb.Access{Credential: pb.Credential_CREDENTIAL_TERMINAL, AllowSuspended: true})),
				method("Auditor", withAccess(&pb.Access{Credential: pb.Credential_CREDENTIAL_ADMIN_TOKEN, LeastRole: pb.Role_ROLE_AUDITOR})),
			},
		}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	files := new(protoregistry.Files)
	if err := files.RegisterFile(fd); err != nil {
		t.Fatal(err)
	}
	got := accessTable(files)
	tests := []struct {
		method string
		want   access
		ok     bool
	}{
		{"NoOption", access{}, false},
		{"NoCredential", access{}, false},
		{"AdminWithoutRole", access{}, false},
		{"Public", access{public: true}, true},
		{"Terminal", access{terminal: true, allowSuspended: true}, true},
		{"Auditor", access{role: auth.RoleAuditor}, true},
	}
	for _, tt := range tests {
		a, ok := got["/posfleet.v1.ProbeService/"+tt.method]
		if ok != tt.ok || a != tt.want {
			t.Errorf("%s: got %+v (listed %v), want %+v (listed %v)", tt.method, a, ok, tt.want, tt.ok)
		}
	}
}
