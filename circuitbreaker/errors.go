package circuitbreaker

import (
	"fmt"
	"time"
)

// ErrOpen is the error, matched with [errors.Is], of a call rejected because
// the breaker is open. The error returned is a [*RejectedError] that says
// which breaker rejected the call and until when.
var ErrOpen error = &sentinel{"circuitbreaker: breaker is open", "circuitbreaker.open"}

// ErrTooManyRequests is the error, matched with [errors.Is], of a call
// rejected because the breaker is half-open and already has as many probe
// calls as it admits. The error returned is a [*RejectedError].
var ErrTooManyRequests error = &sentinel{"circuitbreaker: too many requests while half-open", "circuitbreaker.too_many_requests"}

type sentinel struct{ msg, typ string }

func (e *sentinel) Error() string { return e.msg }

// ErrorType returns the value of the error.type attribute for this error.
func (e *sentinel) ErrorType() string { return e.typ }

// RejectedError is the error returned for a call the breaker did not let
// through. It matches [ErrOpen] or [ErrTooManyRequests] with [errors.Is],
// depending on State.
//
// The breaker builds one RejectedError per open or half-open period and
// returns the same value to every rejected call of that period, so callers
// must not modify it.
type RejectedError struct {
	// Breaker is the name of the breaker that rejected the call.
	Breaker string
	// State is the state the breaker was in: StateOpen or StateHalfOpen.
	State State
	// Until is when the breaker stops rejecting calls and lets a probe
	// through. It is zero while half-open and when the breaker was opened
	// by [Breaker.Trip], which lasts until [Breaker.Reset].
	Until time.Time

	msg string
}

func newRejectedError(name string, s State, until time.Time, openFor time.Duration) *RejectedError {
	e := &RejectedError{Breaker: name, State: s, Until: until}
	switch {
	case s == StateHalfOpen:
		e.msg = fmt.Sprintf("circuitbreaker: breaker %q is half-open and has no probe slot free", name)
	case until.IsZero():
		e.msg = fmt.Sprintf("circuitbreaker: breaker %q is open until reset", name)
	default:
		e.msg = fmt.Sprintf("circuitbreaker: breaker %q is open (retry in %v, at %s)",
			name, openFor.Round(time.Millisecond), until.UTC().Format(time.RFC3339))
	}
	return e
}

func (e *RejectedError) Error() string { return e.msg }

// Is reports whether target is [ErrOpen] (for a rejection while open) or
// [ErrTooManyRequests] (while half-open).
func (e *RejectedError) Is(target error) bool {
	if e.State == StateHalfOpen {
		return target == ErrTooManyRequests
	}
	return target == ErrOpen
}

// ErrorType returns the value of the error.type attribute:
// "circuitbreaker.open" or "circuitbreaker.too_many_requests".
func (e *RejectedError) ErrorType() string {
	if e.State == StateHalfOpen {
		return ErrTooManyRequests.(*sentinel).typ
	}
	return ErrOpen.(*sentinel).typ
}

// RetryAfter returns how long from now until the breaker lets a probe
// through, for a Retry-After header: the time left until Until, at least
// one second while the breaker rejects (half-open or open until reset,
// where the wait is unknown, also give one second).
func (e *RejectedError) RetryAfter(now time.Time) time.Duration {
	if e.Until.IsZero() {
		return time.Second
	}
	return max(e.Until.Sub(now), time.Second)
}
