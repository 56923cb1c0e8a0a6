// Package operator keeps posfleet's admin tokens: the bearer secrets
// operators use, each with a role (ADMIN, OPERATOR, AUDITOR), an optional
// expiry and a revoked flag.
//
// Secrets are never stored: each token is kept as the SHA-256 of its secret
// (the secrets carry 256 random bits, so a fast hash cannot be reversed) and
// looked up by that hash in memory, with a constant-time comparison, so that
// authenticating a call needs no storage read.
//
//	toks, err := operator.Open(ctx, db, operator.Options{NewSecret: server.NewSecret}, logger)
//	err = toks.EnsureBootstrap(ctx, bootstrapSecret) // the first ADMIN token
//	secret, tok, err := toks.Create(ctx, "night-shift", auth.RoleOperator, 0)
//	tok, err = toks.Authenticate(secret)
package operator
