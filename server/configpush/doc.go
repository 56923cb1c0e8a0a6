// Package configpush delivers settings to terminals: layered settings,
// per-terminal effective configs with versions that only ever increase,
// staged rollouts with health checks, and a watch hub that pushes every new
// version to connected terminals.
//
// # Layers and the effective config
//
// Settings are published at one of four scopes: global < merchant < store <
// terminal. A terminal's effective config merges the layers of its chain
// (global, its merchant, its store, itself): a field set at a narrower scope
// wins, an unset field inherits, accepted entry modes inherit when empty,
// and extra is merged key by key, an empty value at a narrower scope
// removing the key. A store's own time zone (from the fleet) sits just
// below the store's layer: it reaches the store's terminals unless the
// store's or the terminal's layer sets another. Fields no layer sets get the
// server defaults: no receipt text, every entry mode, no transaction or
// daily limit, no offline approvals, a 60s heartbeat interval, time zone
// UTC, card velocity check off (window 24h).
//
// # Publishing fails closed
//
// A publish patches its scope's current layer (the newest publish there
// that was not aborted): the fields it sets replace the layer's, extra keys
// merge one by one, the rest is kept. PublishRequest.Replace makes the
// request the whole layer instead. Either way a value of the current layer
// is removed only when PublishRequest.Clear names it; a publish that
// changes nothing is refused, and so are limits not in the currency of
// every merchant the scope reaches. Preview computes the same change and
// the terminals it would reach without publishing; Layer, History,
// DiffVersions and Sources show a scope's layer, its versions, the
// difference of two versions and where each effective value comes from.
// Rollback publishes an earlier layer of a scope again as a new version.
//
// # Versions
//
// Versions come from one global sequence, persisted before use. Each
// publish takes the next version (PublishConfig returns it) and so does
// every stage advance, every abort and every terminal rebind. A terminal's
// effective version is the largest of: for each scope of its chain, the
// version issued to the stage of that scope's rollout that first included
// the terminal; the fallback version of each aborted rollout that had
// reached it; and the version issued when it was last rebound. Every event
// that changes what a terminal sees takes a new version and contributes it
// to that terminal, so a terminal's version only ever increases, including
// when a stage reaches it with an older layer, when an abort sends it back
// to the previous layer, and when a rebind moves it to another chain. A
// terminal with nothing published for its chain has version 0 and the
// defaults.
//
// # Rollouts
//
// Every publish creates a rollout (ID "ro-<version>") with cumulative stage
// percentages (default [100]). A terminal belongs to the first stage whose
// percentage exceeds its bucket, SHA-256(rollout ID "/" terminal ID) mod
// 10000 in hundredths of a percent: deterministic, stable across restarts
// and independent of the fleet's size. A terminal in a stage not yet
// reached keeps its previous effective config (the next layer down at the
// scope); terminals provisioned later get the current state.
//
// Acknowledgements (Ack) of a terminal's current version count for the
// rollout that delivered it; the latest per terminal counts. When rejected
// / acknowledged in the current stage exceeds the plan's max failure ratio
// the rollout halts (audited as ROLLOUT_CHANGED) and stops. A stage is
// healthy when it ran for at least min_stage_duration, every terminal in
// it acknowledged (or, with a positive min_stage_duration, at least half)
// and the ratio is within bounds; then an auto-advancing rollout moves to
// the next stage, and one without auto-advance pauses until ResumeRollout
// advances it. A healthy last stage completes the rollout. Resuming a
// halted rollout restarts the stage's failure-ratio window. Advance moves a
// running or paused rollout to its next stage at once. Abort sends the
// terminals the rollout reached back to the layer below under a new
// version. A publish at a scope with an unfinished rollout supersedes it:
// its terminals keep its layer until the new rollout reaches them.
//
// # Payment gates
//
// A plan with a PaymentGate also holds each stage until its terminals'
// payments show no harm. The engine reads per-terminal Authorize counters
// through PaymentSignals (the server feeds them from the payment handler;
// this package never imports payments) and, once per evaluation interval,
// compares the terminals running the rollout's layer since the stage
// started with a reference: the scope's terminals not yet in the rollout
// over the same period, or the treatment's own payments before the stage.
// A drop of the approval ratio, a rise of the system-error (96) ratio or of
// the mean latency beyond the gate's bounds halts the rollout, or aborts it
// with AutoRollback; a stage advances only after its soak time with enough
// payments within bounds. Every gate decision is audited with its numbers.
// The counters live in memory: after a restart a stage's watch starts
// again.
//
// # Watching
//
// Engine.Watch subscribes a terminal to the Hub. Each watcher has a one-slot
// buffer that holds the newest config not yet taken, so a publish never
// waits for a slow watcher and a slow watcher skips straight to the latest
// version; since every message is a full snapshot nothing is lost. Resuming
// with the last version received gives neither gaps nor repeats.
//
// # Usage
//
// [Open] starts the engine on a store, the audit trail and a [Directory];
// [Engine.Publish] publishes a layer with its rollout plan,
// [Engine.Effective] reads a terminal's effective config from memory (for
// every payment) and [Engine.Watch] returns a [Watcher] whose
// [Watcher.Next] blocks until the terminal has a newer version or a
// command (see the package example).
//
// Storage keys: cp/seq (last version), cp/ro/<version> (rollout with its
// layer), cp/ack/<version>/<terminal> (latest acknowledgement),
// cp/bind/<terminal> (rebind version). Records start with a schema byte.
package configpush

import _ "time/tzdata" // published time zones are checked without relying on the host's zoneinfo
