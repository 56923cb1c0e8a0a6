// Package client is the Go SDK for posfleet, used by terminals, operators,
// the posfleet CLI and the load generator.
//
// Dial connects with options for TLS, the bearer credential (a terminal
// credential or an admin token) and a default deadline for calls that have
// none (see the Dial example).
//
// Plaintext (WithInsecure) is for loopback and tests; a bearer credential
// is only sent over plaintext when WithInsecure was given.
package client
