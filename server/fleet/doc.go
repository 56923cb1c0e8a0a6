// Package fleet manages posfleet's merchants, stores and terminals: the
// terminal lifecycle (provision, register, suspend, reactivate, retire,
// rebind), terminal credentials and enrollment codes, the Ed25519-signed
// merchant identity each terminal is bound to, heartbeats and faults, and
// remote commands.
//
// Everything is persisted through server/store and loaded into memory on
// Open, so that the lookups on every request — a credential to its terminal
// ([Fleet.Authenticate]), a terminal's binding ([Fleet.Binding]), pending
// commands — need no storage read. Changes an operator or terminal asks for
// are committed (synced) before they are acknowledged; heartbeat status,
// faults and command deliveries are written in batches by a background
// flusher, and on Close, so that heartbeats cost no disk write each. So is
// each terminal's bounded status history ([Fleet.StatusHistory]).
//
// Secrets are never stored: terminal credentials (256 random bits) and
// enrollment codes (60 random bits, short-lived) are kept as SHA-256 hashes
// and compared in constant time. Registration attempts are rate limited per
// serial number and refusals per peer; refusals, identity collisions and
// merchant mismatches go to the audit trail, with repeats from one peer
// coalesced.
//
// The signing key is created on first start and kept in storage; its key ID
// is the first 16 hex characters of the SHA-256 of the public key, and
// [Fleet.RotateSigningKey] replaces it while keeping older keys published.
//
// The package example goes from a merchant to an authenticated terminal:
// [Fleet.CreateMerchant], [Fleet.CreateStore], [Fleet.Provision],
// [Fleet.Register] and [Fleet.Authenticate].
//
// Other components connect through small seams: [ConfigSource] supplies
// desired config versions and heartbeat intervals, [Fleet.OnTerminalChange]
// and [Fleet.Terminals] feed config rollouts, [Fleet.PendingCommands] and
// [Fleet.OnCommand] feed command delivery on config streams.
package fleet

import _ "time/tzdata" // store time zones are checked and used without relying on the host's zoneinfo
