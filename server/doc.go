// Package server is posfleet's gRPC transport and the one place that wires
// the engines behind it.
//
// Wiring (wire.go): openEngines opens the data directory's storage and
// builds every engine on it in dependency order (disk watch, audit trail,
// admin tokens, fleet, config push, payments), connecting them through the
// adapters in directories.go. The result, Engines, is handed to the gRPC
// services built; (*Server).Engines exposes it to other front ends. Every
// domain's Open takes the same argument order:
//
//	Open(ctx, db, dependencies..., options, logger)
//
// (audit.Open has neither dependencies nor options; store.Open makes the
// database, from options and a logger).
//
// Transport (server.go and the rest): New builds the grpc.Server with its
// hardening options and interceptors (panic recovery, deadline cap,
// authentication against a least-privilege method table, logging, metrics),
// serves the TerminalService, PaymentService and AdminService handlers plus
// the standard health and reflection services, and shuts down gracefully.
// Handlers only validate, call an engine and translate:
//
//   - validate: the request's fields are checked top to bottom in the
//     handler, with the field checks of validate.go; bad input is
//     InvalidArgument with google.rpc.BadRequest field violations;
//   - call: business rules live in the domain packages under server/, not
//     here;
//   - translate: convert.go converts between protocol messages and domain
//     types, and toStatus (errors.go) maps domain errors to status codes
//     through one table, errorTable; domain errors about one input field
//     (any error with a FieldViolation method) become BadRequest violations.
//
// Usage:
//
// [New] builds a server from a [Config]; [Server.Serve] serves on a listener
// until its context is cancelled and returns once shutdown is complete (see
// the package example).
package server
