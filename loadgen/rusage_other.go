//go:build !unix

package loadgen

import "time"

// cpuTimes is not measured on this platform; it reports zero.
func cpuTimes() (user, sys time.Duration) { return 0, 0 }
