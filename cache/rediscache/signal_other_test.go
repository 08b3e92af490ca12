//go:build !unix

package rediscache_test

import "os"

// Without SIGSTOP a process cannot be frozen: the tests that need it skip.
const canFreeze = false

var stopSignal, contSignal os.Signal // never sent: freeze skips first
