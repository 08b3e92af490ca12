package appsvc

import (
	"context"
	"errors"

	"github.com/otelpatterns/patterns/examples/bank/domainsvc"
	"github.com/otelpatterns/patterns/examples/bank/model"
)

// AccountRepository is the port through which the use cases load and save
// accounts. The infrastructure implements it; its errors match the
// package's Err variables (with errors.Is) where they apply.
type AccountRepository interface {
	// Load returns account id as its events make it. For an account
	// with no events it returns a new, empty one of that id (for Open)
	// and an error matching ErrNotFound.
	Load(ctx context.Context, id string) (*model.Account, error)
	// Save saves the events that c.Account raised since it was loaded.
	// It fails with an error matching ErrConflict when the account
	// changed meanwhile, and, when c.RequestID is set, with one matching
	// ErrAlreadyApplied when events of that request are saved to that
	// account already; in both cases it saves nothing.
	Save(ctx context.Context, c Change) error
	// Applied reports whether a Save under k.RequestID has saved events
	// to account k.AccountID.
	Applied(ctx context.Context, k RequestKey) (bool, error)
}

// Change is the input of [AccountRepository.Save].
type Change struct {
	Account *model.Account
	// RequestID, when set, is recorded with the events, and a second
	// save of the same request to the same account is refused.
	RequestID string
}

// RequestKey names what a request did to one account.
type RequestKey struct {
	RequestID, AccountID string
}

// The errors of the port. ErrNotFound is a domain error (its kind is
// "not_found"); the others are handled by the use cases.
var (
	ErrNotFound       error = &useCaseError{"bank: no such account", "not_found", "bank.not_found"}
	ErrConflict             = errors.New("bank: the account changed concurrently")
	ErrAlreadyApplied       = errors.New("bank: the request is applied to the account already")
	ErrNoRequestID    error = &useCaseError{"bank: a transfer needs a request id", "invalid", "bank.no_request_id"}
)

// useCaseError is a domain error of the use cases: the caller's to
// correct. Its methods are those that package hexagonal reads, without
// this package importing it.
type useCaseError struct{ msg, kind, errorType string }

func (e *useCaseError) Error() string      { return e.msg }
func (e *useCaseError) DomainKind() string { return e.kind }
func (e *useCaseError) ErrorType() string  { return e.errorType }

// Domain is the calls into the inner layers that the use cases make, as
// functions so that the composition root can wrap each in a span of its
// layer (hexagonal.Instrument) without these layers knowing. A nil field
// calls the domain directly.
type Domain struct {
	Open              func(context.Context, model.Opening) error
	Deposit, Withdraw func(context.Context, model.Movement) error
	Transfer          func(context.Context, domainsvc.Transfer) error
}

func (d Domain) withDefaults() Domain {
	if d.Open == nil {
		d.Open = model.Open
	}
	if d.Deposit == nil {
		d.Deposit = model.Deposit
	}
	if d.Withdraw == nil {
		d.Withdraw = model.Withdraw
	}
	if d.Transfer == nil {
		d.Transfer = domainsvc.Transfers{Withdraw: d.Withdraw, Deposit: d.Deposit}.Transfer
	}
	return d
}
