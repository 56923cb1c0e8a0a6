//go:build posfleet_unsafe_nosync

package store

// A binary built with the posfleet_unsafe_nosync tag commits without
// fsync: an acknowledged write lives only in the page cache until the
// kernel writes it back, and a power cut loses it. Only the power-loss
// test builds such a binary, for its control run, to prove that the rig
// catches lost writes. No release is built with this tag, and there is no
// flag or environment variable to the same effect.
func init() { syncWrites = false }
