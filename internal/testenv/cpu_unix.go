//go:build unix

package testenv

import (
	"syscall"
	"time"
)

// ProcessCPU returns the CPU time this process has used, user and system,
// every goroutine and the collector included: per operation, what a
// benchmark costs whatever else the machine runs, where wall time waits
// for the CPU on a shared machine. It reports false where the platform
// cannot tell.
func ProcessCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
