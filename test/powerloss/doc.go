// Package powerloss holds the power-loss test of posfleet. It runs the
// real posfleet binary with its data directory on cutfs, a FUSE file
// system that remembers what has not been fsynced (see package cutfs for
// exactly what it models), drives every kind of state against it (see
// test/internal/workload), and at a random moment cuts the power: SIGKILL,
// then every write, create, remove and rename that was not made durable is
// dropped. The server restarts on what is left and every answer it had
// acknowledged must still be there exactly.
//
// A control run does the same with a binary built with the
// posfleet_unsafe_nosync tag, whose store commits without fsync, and must
// lose acknowledged answers: that proves the rig bites.
//
// The test needs /dev/fuse and root (or fusermount3). Without them it is
// skipped, except under CI=true, where it fails.
//
// Run it with (POSFLEET_POWERLOSS_CUTS sets the number of cuts, default
// 20; POSFLEET_POWERLOSS_SEED repeats a run):
//
//	go test ./test/powerloss/
//	POSFLEET_POWERLOSS_CUTS=500 go test -timeout 2h ./test/powerloss/
package powerloss
