//go:build !unix

package pglog_test

import "time"

// selfCPU reports that this process's CPU time is not known here.
func selfCPU() (time.Duration, bool) { return 0, false }
