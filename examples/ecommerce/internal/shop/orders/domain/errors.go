package domain

// Error is a rule of the domain that a request broke. Its DomainKind is
// one of hexagonal's kinds, written here as a string so that the domain
// imports nothing.
type Error struct {
	kind, msg string
}

// Error returns the message.
func (e *Error) Error() string { return e.msg }

// DomainKind returns the error's kind ("invalid", "not_found", ...).
func (e *Error) DomainKind() string { return e.kind }

// Is makes errors.Is match errors of the same kind, so that callers can
// test against the sentinels below.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.msg == "" && t.kind == e.kind
}

// The kinds of domain error, as sentinels for errors.Is.
var (
	ErrInvalid  = &Error{kind: "invalid"}
	ErrNotFound = &Error{kind: "not_found"}
	// ErrRejected is a business refusal by another service: stock short,
	// a payment declined.
	ErrRejected = &Error{kind: "rejected"}
)

func invalid(msg string) error { return &Error{kind: "invalid", msg: msg} }

// NotFound returns an ErrNotFound error with msg.
func NotFound(msg string) error { return &Error{kind: "not_found", msg: msg} }

// Refused returns an ErrRejected error with msg.
func Refused(msg string) error { return &Error{kind: "rejected", msg: msg} }
