package circuitbreaker

import (
	"math"
	"strconv"
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

// ErrNilFunc is returned by [Breaker.Execute] and [Do] when the function
// to call is nil. No call is admitted or counted: it is a programming
// error, reported as an error rather than a nil-pointer panic.
var ErrNilFunc error = &sentinel{"circuitbreaker: nil function to call", "circuitbreaker.nil_function"}

// ErrNilBreaker is returned by [Breaker.Execute], [Breaker.Allow] and
// [Do] called on a nil *Breaker, or on a zero Breaker rather than one made
// by [New]. No call is admitted or counted.
var ErrNilBreaker error = &sentinel{"circuitbreaker: nil Breaker (make one with circuitbreaker.New)", "circuitbreaker.nil_breaker"}

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
// must not modify it. Its message is written when it is read, from the
// clock at that moment, so a rejection logged late still says how long
// the wait really is:
//
//	circuitbreaker: breaker "payments" is open (retry in 1.5s, at 2026-12-06T12:00:04.000Z)
//	circuitbreaker: breaker "payments" was open until 2026-12-06T12:00:04.000Z (retry now)
//	circuitbreaker: breaker "payments" is open until reset
//	circuitbreaker: breaker "payments" is half-open and has no probe slot free
type RejectedError struct {
	// Breaker is the name of the breaker that rejected the call.
	Breaker string
	// State is the state the breaker was in: StateOpen or StateHalfOpen.
	State State
	// Until is when the breaker stops rejecting calls and lets a probe
	// through. It is zero while half-open and when the breaker was opened
	// by Breaker.Trip, which lasts until Breaker.Reset.
	Until time.Time
}

func newRejectedError(name string, s State, until time.Time) *RejectedError {
	return &RejectedError{Breaker: name, State: s, Until: until}
}

// rfc3339Milli is RFC 3339 to the millisecond: open periods are often
// shorter than a second.
const rfc3339Milli = "2006-01-02T15:04:05.000Z07:00"

// Error describes the rejection as it stands when Error is called: the
// time left until Until is computed from the current time, not from the
// moment of the rejection.
func (e *RejectedError) Error() string { return e.message(time.Now()) }

func (e *RejectedError) message(now time.Time) string {
	var buf [128]byte
	m := append(buf[:0], "circuitbreaker: breaker "...)
	m = strconv.AppendQuote(m, e.Breaker)
	switch {
	case e.State == StateHalfOpen:
		m = append(m, " is half-open and has no probe slot free"...)
	case e.Until.IsZero():
		m = append(m, " is open until reset"...)
	default:
		if left := e.Until.Sub(now); left > 0 {
			// Rounded up, so that a wait under a millisecond does not read
			// as 0s (unless that would overflow the longest wait).
			if left <= math.MaxInt64-time.Millisecond {
				left = (left + time.Millisecond - 1).Truncate(time.Millisecond)
			}
			m = append(m, " is open (retry in "...)
			m = append(m, left.String()...)
			m = append(m, ", at "...)
			m = e.Until.UTC().AppendFormat(m, rfc3339Milli)
			m = append(m, ')')
		} else {
			m = append(m, " was open until "...)
			m = e.Until.UTC().AppendFormat(m, rfc3339Milli)
			m = append(m, " (retry now)"...)
		}
	}
	return string(m)
}

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
