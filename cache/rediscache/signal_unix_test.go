//go:build unix

package rediscache_test

import "syscall"

// The signals that freeze and thaw a private Redis server.
const canFreeze = true

var stopSignal, contSignal = syscall.SIGSTOP, syscall.SIGCONT
