package server

import pb "github.com/posfleet/posfleet/proto/posfleet/v1"

// paymentService implements pb.PaymentServiceServer for terminals.
type paymentService struct {
	pb.UnimplementedPaymentServiceServer
	s *Server
}
