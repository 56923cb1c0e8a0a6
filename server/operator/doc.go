// Package operator keeps posfleet's admin tokens: the bearer secrets
// operators use, each with a role (ADMIN, OPERATOR, AUDITOR), an optional
// expiry and a revoked flag.
//
// Secrets are never stored: each token is kept as the SHA-256 of its secret
// (the secrets carry 256 random bits, so a fast hash cannot be reversed) and
// looked up by that hash in memory, with a constant-time comparison, so that
// authenticating a call needs no storage read.
//
// [Open] loads the store, [Tokens.EnsureBootstrap] installs the first ADMIN
// token, [Tokens.Create] issues one for a role and [Tokens.Authenticate]
// resolves a secret (see the package example).
package operator
