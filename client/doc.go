// Package client is the Go SDK for posfleet, used by terminals, operators,
// the posfleet CLI and the load generator.
//
// Dial connects with options for TLS, the bearer credential (a terminal
// credential or an admin token) and a default deadline for calls that have
// none (see the Dial example). It dials with the protocol's published gRPC
// service config (deadlines, and retries of Unavailable for the terminal
// RPCs that are safe to repeat) and a keepalive within the server's ping
// policy (KeepaliveTime). The payment helpers retry with the same
// request_id by their RetryPolicy instead, waiting out the server's
// RetryInfo (see RetryDelay and Reason), and reverse an authorization
// whose outcome stays unknown.
//
// Plaintext (WithInsecure) is for loopback and tests; a bearer credential
// is only sent over plaintext when WithInsecure was given.
package client
