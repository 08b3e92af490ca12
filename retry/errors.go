package retry

import (
	"errors"
	"fmt"
	"time"

	"github.com/otelpatterns/patterns/internal/telemetry"
)

// ErrExhausted is matched, with [errors.Is], by the error of a [Retrier]
// that gave up because its attempts or its time ran out: the attempt limit,
// the elapsed-time limit, or a context deadline too near to wait for the
// next attempt.
var ErrExhausted error = &sentinel{"retry: retries exhausted", "retry.exhausted"}

// ErrBudgetExhausted is matched by the error of a [Retrier] that gave up
// because its [Budget] had no retry left to spend.
var ErrBudgetExhausted error = &sentinel{"retry: retry budget exhausted", "retry.budget_exhausted"}

// ErrNilFunc is returned by [Retrier.Do] and [Do] when the operation to
// call is nil. Nothing is called or counted: it is a programming error,
// reported as an error rather than a nil-pointer panic.
var ErrNilFunc error = &sentinel{"retry: nil function to call", "retry.nil_function"}

// ErrNilRetrier is returned by [Retrier.Do] and [Do] called on a nil
// *Retrier, or on a zero Retrier rather than one made by [New]. Nothing is
// called or counted.
var ErrNilRetrier error = &sentinel{"retry: nil Retrier (make one with retry.New)", "retry.nil_retrier"}

type sentinel struct{ msg, typ string }

func (e *sentinel) Error() string { return e.msg }

// ErrorType returns the value of the error.type attribute for this error.
func (e *sentinel) ErrorType() string { return e.typ }

// Error is the error of a [Retrier] that gave up. It keeps every attempt's
// error: [errors.Is] and [errors.As] see each of them, the reason for giving
// up ([ErrExhausted], [ErrBudgetExhausted], or the context's error when it
// was cancelled while waiting), and nothing else.
type Error struct {
	// Attempts is how many times the operation was called.
	Attempts int
	// Last is the last attempt's error, unwrapped from Permanent or
	// After.
	Last error
	// Reason is why the retrier stopped: ErrExhausted, ErrBudgetExhausted,
	// a context error, or nil when the last error was not worth retrying
	// (Permanent, or refused by WithRetryIf).
	Reason error

	errs []error // every attempt's error, oldest first
}

// Error says why the retrier gave up, after how many attempts, and the
// last attempt's error.
func (e *Error) Error() string {
	attempts := "1 attempt"
	if e.Attempts != 1 {
		attempts = fmt.Sprintf("%d attempts", e.Attempts)
	}
	switch {
	case e.Reason == nil:
		return fmt.Sprintf("retry: not retryable after %s: %v", attempts, e.Last)
	case e.Reason == ErrExhausted:
		return fmt.Sprintf("retry: gave up after %s: %v", attempts, e.Last)
	case e.Reason == ErrBudgetExhausted:
		return fmt.Sprintf("retry: retry budget exhausted after %s: %v", attempts, e.Last)
	}
	return fmt.Sprintf("retry: %v after %s: %v", e.Reason, attempts, e.Last)
}

// Unwrap returns the reason for giving up, if any, and every attempt's
// error.
func (e *Error) Unwrap() []error {
	if e.Reason == nil {
		return e.errs
	}
	return append([]error{e.Reason}, e.errs...)
}

// ErrorType returns the value of the error.type attribute: the type of the
// reason for giving up ("retry.exhausted", "retry.budget_exhausted",
// "context.Canceled", or the type of the context's cause), or, when the
// last error was not retryable, that error's own error.type (its
// ErrorType method, SQLSTATE, Redis prefix, exported type name, or
// "_OTHER"), by the module's one rule for error.type.
func (e *Error) ErrorType() string {
	if e.Reason == nil {
		return telemetry.ErrorTypeString(e.Last)
	}
	return telemetry.ErrorTypeString(e.Reason)
}

// Permanent marks err as not worth retrying: a [Retrier] stops at once and
// gives up with it. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// After returns err with a delay that the [Retrier] waits before the next
// attempt instead of the one its backoff would choose: for push-back from a
// server ("try again in 30s"). The retrier's limits still apply: it gives up
// rather than wait past its elapsed-time limit or the context's deadline.
// After(d, nil) is nil; a negative d counts as 0.
func After(d time.Duration, err error) error {
	if err == nil {
		return nil
	}
	return &afterError{max(d, 0), err}
}

type afterError struct {
	d   time.Duration
	err error
}

func (e *afterError) Error() string { return e.err.Error() }
func (e *afterError) Unwrap() error { return e.err }

// unwrapMarkers strips the Permanent and After markers from the top of err.
func unwrapMarkers(err error) error {
	for {
		switch e := err.(type) {
		case *permanentError:
			err = e.err
		case *afterError:
			err = e.err
		default:
			return err
		}
	}
}

// markers walks err's chain once for the Permanent and After markers,
// without the reflection of errors.As: classifying runs on every failed
// attempt.
func markers(err error) (permanent bool, wait time.Duration, hasWait bool) {
	var walk func(error)
	walk = func(err error) {
		for err != nil {
			switch e := err.(type) {
			case *permanentError:
				permanent = true
			case *afterError:
				if !hasWait {
					wait, hasWait = e.d, true
				}
			case interface{ Unwrap() []error }:
				for _, inner := range e.Unwrap() {
					walk(inner)
				}
				return
			}
			err = errors.Unwrap(err)
		}
	}
	walk(err)
	return permanent, wait, hasWait
}
