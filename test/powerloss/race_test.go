//go:build race

package powerloss_test

// Under the race detector CI runs a few cuts only: the race run checks the
// rig's and the server's concurrency, the plain run covers the cuts.
func init() { defaultCuts = 5 }
