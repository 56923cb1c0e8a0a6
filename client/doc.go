// Package client is the Go SDK for posfleet, used by terminals, operators,
// the posfleet CLI and the load generator.
//
// Dial connects with options for TLS, the bearer credential (a terminal
// credential or an admin token) and a default deadline for calls that have
// none:
//
//	c, err := client.Dial("127.0.0.1:7400", client.WithBearer(token), client.WithInsecure())
//	if err != nil { ... }
//	defer c.Close()
//	resp, err := c.Admin().GetFleetReport(ctx, &posfleetv1.GetFleetReportRequest{})
//
// Plaintext (WithInsecure) is for loopback and tests; a bearer credential
// is only sent over plaintext when WithInsecure was given.
package client
