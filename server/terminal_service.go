package server

import pb "github.com/posfleet/posfleet/proto/posfleet/v1"

// terminalService implements pb.TerminalServiceServer for terminals.
type terminalService struct {
	pb.UnimplementedTerminalServiceServer
	s *Server
}
