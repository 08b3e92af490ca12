//go:build !unix

package testenv

import "time"

// ProcessCPU reports false: the process's CPU time is read on unix only.
func ProcessCPU() (time.Duration, bool) { return 0, false }
