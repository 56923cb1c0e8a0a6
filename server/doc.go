// Package server is posfleet's gRPC transport: it builds the grpc.Server with
// its hardening options and interceptors (panic recovery, deadline cap,
// authentication against a least-privilege method table, logging, metrics),
// serves the TerminalService, PaymentService and AdminService handlers plus
// the standard health and reflection services, and shuts down gracefully.
//
// Handlers validate requests (bad input is InvalidArgument with
// google.rpc.BadRequest field violations), call the domain packages under
// server/, and map results; domain errors become status codes in one table
// (errors.go). No business rules live here.
//
// [New] builds a server from a [Config]; [Server.Serve] serves on a listener
// until its context is cancelled and returns once shutdown is complete (see
// the package example).
package server
