// Package corruption holds the corruption matrix of posfleet's storage: it
// builds a database with acknowledged authorizations through the real
// posfleet binary, once stopped cleanly (everything in tables) and once
// killed with SIGKILL (the newest commits only in Badger's write-ahead
// log), then damages copies of it one way at a time — write-ahead log,
// tables, MANIFEST, value log, a deleted table, the watermark file — and
// starts the server on each. Every case must end in one of two outcomes:
// the server refuses to start, saying the database is damaged, or it
// starts and replays every acknowledged answer unchanged (same
// authorization ID, decision, response and approval code). A new decision
// for an acknowledged request fails the test.
//
// Run it with:
//
//	go test ./test/corruption/
package corruption
