package model

// RuleError is a broken rule of the domain: the caller's to correct, not
// a fault of the service. Compare with errors.Is against the Err
// variables; the errors returned wrap them with the details.
type RuleError struct {
	msg, kind, code string
}

// Error returns the rule's message.
func (e *RuleError) Error() string { return e.msg }

// DomainKind returns the error's kind, as package hexagonal names kinds
// ("rejected", "conflict", "invalid"), so that the edge can answer it
// with the right status without this package importing hexagonal.
func (e *RuleError) DomainKind() string { return e.kind }

// ErrorType returns the error's error.type, such as
// "bank.insufficient_funds".
func (e *RuleError) ErrorType() string { return "bank." + e.code }

// The rules of the domain: those of an account, and those of a transfer
// between two (checked by the domain service, package domainsvc).
var (
	ErrInvalidAmount     = &RuleError{"bank: amount must be positive", "invalid", "invalid_amount"}
	ErrInsufficientFunds = &RuleError{"bank: insufficient funds", "rejected", "insufficient_funds"}
	ErrNotOpen           = &RuleError{"bank: account is not open", "rejected", "not_open"}
	ErrAlreadyOpen       = &RuleError{"bank: account is already open", "conflict", "already_open"}
	ErrNoOwner           = &RuleError{"bank: an account needs an owner", "invalid", "no_owner"}
	ErrCurrencyMismatch  = &RuleError{"bank: currencies differ", "rejected", "currency_mismatch"}
	ErrSameAccount       = &RuleError{"bank: a transfer needs two accounts", "rejected", "same_account"}
)
