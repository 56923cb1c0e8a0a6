// Package console is posfleet's operator web console: server-rendered
// pages over HTTP for the people who run store fleets — dashboard,
// terminals, merchants and stores, config rollouts, alerts and audit,
// settlement (日结) with CSV export, transactions and admin tokens.
//
// The console holds no business rules. It is a web client of AdminService:
// every page and action is an AdminService call made with the signed-in
// operator's own admin token, over a connection to the server itself
// (server.Server.InProcessConn). Roles, validation, quotas, rate limits and
// the audit trail therefore apply exactly as for the CLI, and a validation
// error (google.rpc.BadRequest) is shown next to the form field it names.
//
// Security: sign-in at /login with an admin token (form field "token"),
// checked with AdminService.WhoAmI; the token stays in server memory,
// keyed by a random session ID in an HttpOnly, SameSite=Strict cookie
// (Secure under TLS) that expires when idle and at a maximum age. Every
// write needs the session's CSRF token and a same-origin Origin (or
// Referer). Every answer carries a strict Content Security Policy (no
// inline script or style), frame denial and nosniff. Templates escape all
// data (html/template). Pages hide the controls a role may not use, and the
// server refuses them anyway.
//
// English and Simplified Chinese, chosen by Accept-Language or the switch
// in the header. Amounts show in major units with their currency; times in
// the store's time zone where the page knows the store.
//
// Usage:
//
//	conn, _ := srv.InProcessConn()
//	con, _ := console.New(console.DefaultConfig(), pb.NewAdminServiceClient(conn), logger)
//	http.Serve(lis, con)
package console
