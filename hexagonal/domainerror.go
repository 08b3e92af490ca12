package hexagonal

import (
	"fmt"
)

// DomainError is an error of the domain: a rule the request broke (an
// empty order, a payment after cancellation), a thing that does not
// exist. It is the caller's to correct, not a fault of the service: a
// call that returns one counts as a domain_error, not an error, and its
// span's status stays unset; at the edge, [WriteProblem] answers it with
// the 4xx status of its kind.
//
// A domain package defines its own errors with a DomainKind method, which
// returns a plain string so that the domain need not import this package:
//
//	type EmptyOrderError struct{ ID string }
//
//	func (e *EmptyOrderError) Error() string      { return "order " + e.ID + " has no lines" }
//	func (e *EmptyOrderError) DomainKind() string { return "rejected" } // hexagonal.KindRejected
type DomainError interface {
	error
	// DomainKind returns the error's kind: one of the Kind constants,
	// such as [KindNotFound], or another string, which answers 422.
	DomainKind() string
}

// The kinds of domain errors, and the HTTP status each answers.
const (
	// KindInvalid: the input is malformed or out of range (400).
	KindInvalid = "invalid"
	// KindUnauthorized: the caller is not authenticated (401).
	KindUnauthorized = "unauthorized"
	// KindForbidden: the caller may not do this (403).
	KindForbidden = "forbidden"
	// KindNotFound: the thing does not exist (404).
	KindNotFound = "not_found"
	// KindConflict: the thing's state conflicts with the request: it
	// exists already, or changed meanwhile (409).
	KindConflict = "conflict"
	// KindRejected: the request is understood but breaks a domain rule
	// (422).
	KindRejected = "rejected"
	// KindUnavailable: the domain cannot do it now, but may later (503).
	KindUnavailable = "unavailable"
)

// DomainKind returns the kind of the first [DomainError] in err's chain,
// and whether there is one. It walks the chain itself (through Unwrap
// methods of both forms) rather than with [errors.As], which allocates.
func DomainKind(err error) (kind string, ok bool) {
	if d, _, ok := domainOf(err); ok {
		return d.DomainKind(), true
	}
	return "", false
}

// domainOf returns the first [DomainError] in err's chain, walked as
// [DomainKind] says, and the error whose message tells it: the outermost
// of the errors wrapping it one by one, below any that joins it to
// others (errors.Join, fmt.Errorf with several %w), whose messages are
// not the domain error's.
func domainOf(err error) (d DomainError, msg error, ok bool) {
	msg = err
	for err != nil {
		if d, is := err.(DomainError); is {
			return d, msg, true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if d, msg, ok := domainOf(e); ok {
					return d, msg, true
				}
			}
			return nil, nil, false
		default:
			return nil, nil, false
		}
	}
	return nil, nil, false
}

// Errorf returns a [DomainError] of kind, with the message that
// [fmt.Errorf] makes of format and args (whose %w verbs wrap as
// fmt.Errorf's do). It is for application code; a domain package that
// keeps free of imports defines errors of its own.
func Errorf(kind, format string, args ...any) error {
	return &domainError{kind: kind, err: fmt.Errorf(format, args...)}
}

type domainError struct {
	kind string
	err  error
}

func (e *domainError) Error() string      { return e.err.Error() }
func (e *domainError) Unwrap() error      { return e.err }
func (e *domainError) DomainKind() string { return e.kind }

// ErrorType returns "hexagonal." and the kind, such as
// "hexagonal.not_found", the error.type of the error.
func (e *domainError) ErrorType() string { return "hexagonal." + e.kind }
