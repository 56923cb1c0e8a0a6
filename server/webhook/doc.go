// Package webhook delivers posfleet's operational events (merchant-mismatch
// alerts, halted and completed rollouts, terminals going offline, batches
// out of balance, rejected configs, low disk) to operators' HTTP endpoints,
// signed with each endpoint's secret.
//
// # Outbox
//
// The audit trail is the outbox: every event that a webhook can carry is an
// audit event, committed with the change it records. Each endpoint follows
// the audit log in ID order with a durable cursor ([audit.Log.Tail]), so an
// event that is on disk is delivered even if the server stops between the
// change and the delivery. An endpoint's events go out one at a time, in
// order: the next waits until the previous one was delivered or finally
// failed. A failed attempt is retried with exponential backoff and jitter
// for [Config.RetryFor] (24 hours by default); then the delivery is marked
// failed, which the endpoint's status and [Webhooks.ListDeliveries] show,
// and an operator may [Webhooks.Redeliver] it.
//
// Delivery is at least once: a crash after the receiver answered but before
// the answer was recorded sends the event again. Every event carries a
// stable ID ("evt_" and the audit event ID), in the Posfleet-Event-Id header
// and the body's "id", for receivers to drop duplicates.
//
// # Signature
//
// Each request carries
//
//	Posfleet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">
//
// keyed with the endpoint's secret (the whole "whsec_..." string). A
// receiver checks it with [Verify], rejecting bodies that were altered and
// timestamps outside its tolerance (replays).
//
// # Usage
//
//	hooks, err := webhook.Open(ctx, db, auditLog, webhook.DefaultConfig(), logger)
//	ep, secret, err := hooks.Create(ctx, webhook.Spec{URL: "https://ops.example/hooks",
//		Events: []webhook.Event{webhook.MerchantMismatch}}, actor)
//	deliveries, next, err := hooks.ListDeliveries(ctx, ep.ID, webhook.StatusUnspecified, 50, "")
//	hooks.Close()
package webhook
