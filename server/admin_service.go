package server

import pb "github.com/posfleet/posfleet/proto/posfleet/v1"

// adminService implements pb.AdminServiceServer for operators. Its methods
// are spread over admin_*.go, one file per domain.
type adminService struct {
	pb.UnimplementedAdminServiceServer
	s *Server
}
