package domain

// Error is a broken rule or a missing thing: the caller's to correct, not a
// fault of the service. Errors are compared by identity (errors.Is), and
// wrapped with %w to add detail.
type Error struct {
	kind string
	msg  string
}

// Error returns the rule's message.
func (e *Error) Error() string { return e.msg }

// DomainKind returns the error's kind, one of the strings the hexagonal
// package maps to HTTP statuses ("invalid", "not_found", "conflict",
// "rejected"), so that the domain need not import it.
func (e *Error) DomainKind() string { return e.kind }

// The kinds of [Error], as the hexagonal package names them.
const (
	kindInvalid  = "invalid"   // 400
	kindNotFound = "not_found" // 404
	kindConflict = "conflict"  // 409
	kindRejected = "rejected"  // 422
)

// The domain's errors.
var (
	// ErrInvalid: a value object was given a malformed value.
	ErrInvalid = &Error{kindInvalid, "invalid value"}
	// ErrEmptyOrder: an order needs at least one line.
	ErrEmptyOrder = &Error{kindRejected, "an order needs at least one line"}
	// ErrNotFound: no order has the ID.
	ErrNotFound = &Error{kindNotFound, "order not found"}
	// ErrCancelled: the order was cancelled, and cannot be paid.
	ErrCancelled = &Error{kindConflict, "the order is cancelled"}
	// ErrAlreadyPaid: the order was paid, and cannot be paid again or
	// cancelled.
	ErrAlreadyPaid = &Error{kindConflict, "the order is already paid"}
	// ErrWrongAmount: a payment must be of the order's total.
	ErrWrongAmount = &Error{kindRejected, "the payment does not match the order's total"}
	// ErrOutOfStock: the inventory cannot reserve a line.
	ErrOutOfStock = &Error{kindConflict, "out of stock"}
	// ErrPaymentDeclined: the payment service declined the charge.
	ErrPaymentDeclined = &Error{kindRejected, "the payment was declined"}
)
