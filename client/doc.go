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
// # Several nodes
//
// posfleet nodes that share one database are interchangeable: every node
// knows every terminal. Dial takes them as a comma-separated list,
// "a:7400,b:7400,c:7400", and the client then follows the cluster with
// gRPC's own machinery: a static list of the nodes (a manual resolver)
// under the pick_first policy.
//
//   - Spread: the client tries the nodes in an order of its own, so that a
//     fleet of terminals spreads over them: shuffled at Dial by default,
//     by a terminal's stable key with WithTargetKey (rendezvous hashing:
//     the same node after a restart), or exactly in turn with
//     WithTargetIndex.
//   - Sticky: all calls of the client, unary calls and the config watch
//     stream alike, go over one connection to one node while that node is
//     up.
//   - Failover: when the node is gone (the connection is refused, reset or
//     times out under keepalive, or the node sends GOAWAY as it shuts
//     down), the next call connects again, trying the nodes in the
//     client's order and skipping the ones that refuse (each gets 250ms
//     before the next is tried in parallel), and lands on a node that is
//     up. A node that fails a call or ends a stream with Unavailable while
//     keeping its connection (SHUTTING_DOWN as it drains), or lets two
//     calls in a row run past their deadline (a node that vanished
//     without closing its connections, which keepalive would only notice
//     after some 40 seconds), is set aside, left out of the list for
//     WithSetAside (30s by default), so that the next call goes elsewhere
//     too. A node that comes back is used again
//     when the client next connects. The terminals of a node that is gone
//     spread over the others as evenly as they spread at first.
//   - Retries keep working across the move: a call that failed with the
//     node (Unavailable) is retried by the same rules as on one node, with
//     the same request_id, waiting out RetryInfo, at most
//     RetryPolicy.Attempts tries in all; the published service config's
//     retries of the other terminal calls do the same. The config watch
//     ends with the node (Unavailable, SHUTTING_DOWN on a graceful stop)
//     and WatchConfig reopens it on the new node, resuming from the last
//     version received.
//
// WithNodeObserver reports the node of each call, for metrics and logs.
// A single target may be any gRPC target ("dns:///pos.example:7400"); the
// entries of a list are host:port each.
//
// Plaintext (WithInsecure) is for loopback and tests; a bearer credential
// is only sent over plaintext when WithInsecure was given.
package client
