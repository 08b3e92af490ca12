package gateway

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Errors of calls through [Gateway.Transport] and [UpstreamTransport],
// to be matched with [errors.Is]; a proxied request gets the response
// the gateway makes of them instead.
var (
	// ErrUnavailable: no target of the upstream could take the request
	// (every target out of service, ejected, or behind an open breaker).
	// A proxied request gets 503 with Retry-After.
	ErrUnavailable = errors.New("gateway: upstream has no target available")

	// ErrUnknownUpstream: the request's host names no upstream of the
	// routing table.
	ErrUnknownUpstream = errors.New("gateway: no such upstream")
)

// The errors below never reach users of proxied routes: the gateway
// turns them into responses. Their ErrorType methods give the error.type
// values the gateway records on server spans and
// http.server.request.duration.

// unavailableError is the error of a request that no target of its
// upstream could take: every target out of service (health checks),
// ejected, or behind an open breaker. It becomes a 503 with Retry-After.
type unavailableError struct {
	upstream   string
	retryAfter time.Duration // 0 when unknown
}

func (e *unavailableError) Error() string {
	return fmt.Sprintf("gateway: upstream %q has no target available", e.upstream)
}

// ErrorType returns the error.type value: gateway.upstream_unavailable.
func (e *unavailableError) ErrorType() string { return "gateway.upstream_unavailable" }

func (e *unavailableError) Is(target error) bool { return target == ErrUnavailable }

// timeoutError is the error of an attempt abandoned after the retry
// policy's PerTryTimeout.
type timeoutError struct{ after time.Duration }

func (e *timeoutError) Error() string {
	return fmt.Sprintf("gateway: upstream attempt timed out after %v", e.after)
}

// ErrorType returns the error.type value: gateway.attempt_timeout.
func (e *timeoutError) ErrorType() string { return "gateway.attempt_timeout" }

// Timeout reports true, as net.Error timeouts do.
func (e *timeoutError) Timeout() bool { return true }

// statusError is an upstream answer that counts as a failure: for a
// breaker, or a retry.
type statusError struct{ code int }

func (e *statusError) Error() string {
	return "gateway: upstream answered " + strconv.Itoa(e.code)
}

// ErrorType returns the status code, as the HTTP semantic conventions
// record it.
func (e *statusError) ErrorType() string { return strconv.Itoa(e.code) }

// badStatusError is an upstream answer whose status code is not one
// (below 100 or above 999): a failed attempt, since net/http would panic
// writing it to the client.
type badStatusError struct{ code int }

func (e *badStatusError) Error() string {
	return "gateway: upstream answered with an invalid status code " + strconv.Itoa(e.code)
}

// ErrorType returns the error.type value: gateway.invalid_status.
func (e *badStatusError) ErrorType() string { return "gateway.invalid_status" }

// errTransportPanicked is what a target's breaker is told of an attempt
// whose transport panicked: a failure, as the breaker's Execute counts a
// panic.
var errTransportPanicked = errors.New("gateway: the upstream's transport panicked")
