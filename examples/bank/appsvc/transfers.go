package appsvc

import (
	"context"
	"errors"
	"fmt"

	"github.com/otelpatterns/patterns/examples/bank/domainsvc"
	"github.com/otelpatterns/patterns/examples/bank/model"
)

// Transfers is the transfer use case: money from one account to another,
// once per request id.
//
// # Idempotency
//
// The record of what a request did is kept by the repository with the
// events themselves: a save under a request id records the pair (request
// id, account) in the same append as the account's events, and refuses a
// second save of the pair (on the event store, eventsource.WithCommandID
// and its command log). That is the simplest robust choice: the record
// and the money cannot disagree, since they are written together, and
// there is no separate table to write after the money moved (and to miss,
// on a crash in between). Before deciding, the use case asks
// [AccountRepository.Applied] for each account, because a retried
// request must not be decided again on the new balances: a transfer
// that moved its money answers that it is done, rather than moving it
// again or being refused for funds it took itself; a transfer that
// stopped between its two saves completes the deposit only. The check at
// save, in the append's transaction, is the one that holds when two
// deliveries of a request race.
type Transfers struct {
	repo   AccountRepository
	domain Domain
}

// NewTransfers returns the transfer use case, loading and saving accounts
// through repo and calling the domain through domain.
func NewTransfers(repo AccountRepository, domain Domain) (*Transfers, error) {
	if repo == nil {
		return nil, errors.New("appsvc: NewTransfers: repo is nil")
	}
	return &Transfers{repo: repo, domain: domain.withDefaults()}, nil
}

// TransferRequest is the input of [Transfers.Transfer].
type TransferRequest struct {
	// RequestID is chosen by the client (an idempotency key), so that
	// its retries carry the same one.
	RequestID string
	From, To  string
	Amount    model.Money
}

// Receipt is what a transfer did.
type Receipt struct {
	// From and To are the accounts after the transfer (as loaded, when
	// it was refused or had been applied already).
	From, To *model.Account
	// Replayed is set when the request had been applied already: no
	// money moved this time.
	Replayed bool
	// Attempts counts the decisions taken: more than one when saves lost
	// races with other writers, whose errors are Conflicts.
	Attempts  int
	Conflicts []error
}

// Transfer moves req.Amount from req.From to req.To, unless the request
// has moved it already. The withdrawal is saved first, then the deposit:
// two appends to two streams. A save that loses a race makes it load
// both accounts again and decide again, up to MaxAttempts times; after
// a saved withdrawal, only the deposit is left to do. A broken rule of
// the domain is returned as it is, with nothing saved.
func (s *Transfers) Transfer(ctx context.Context, req TransferRequest) (Receipt, error) {
	var r Receipt
	if req.RequestID == "" {
		return r, ErrNoRequestID
	}
	for r.Attempts = 1; ; r.Attempts++ {
		done, err := s.attempt(ctx, req, &r)
		if done || err != nil {
			return r, err
		}
		if r.Attempts == MaxAttempts {
			return r, fmt.Errorf("transfer %s: %d attempts lost races: %w", req.RequestID, r.Attempts, errors.Join(r.Conflicts...))
		}
	}
}

// attempt decides and saves the transfer once. It returns done = false
// when a save lost a race (recorded in r) and the transfer is to be
// decided again.
func (s *Transfers) attempt(ctx context.Context, req TransferRequest, r *Receipt) (done bool, err error) {
	withdrawn, err := s.repo.Applied(ctx, RequestKey{RequestID: req.RequestID, AccountID: req.From})
	if err != nil {
		return false, err
	}
	deposited, err := s.repo.Applied(ctx, RequestKey{RequestID: req.RequestID, AccountID: req.To})
	if err != nil {
		return false, err
	}
	if r.From, err = s.repo.Load(ctx, req.From); err != nil {
		return false, err
	}
	if r.To, err = s.repo.Load(ctx, req.To); err != nil {
		return false, err
	}
	switch {
	case withdrawn && deposited:
		r.Replayed = true
		return true, nil
	case deposited:
		// Saves go withdrawal first: this is not a request of ours.
		return false, fmt.Errorf("transfer %s: deposited to %s without a withdrawal from %s", req.RequestID, req.To, req.From)
	case withdrawn:
		// An earlier attempt saved the withdrawal and stopped: deposit.
		err = s.domain.Deposit(ctx, model.Movement{Account: r.To, Amount: req.Amount})
	default:
		err = s.domain.Transfer(ctx, domainsvc.Transfer{From: r.From, To: r.To, Amount: req.Amount})
	}
	if err != nil {
		return false, err
	}
	for _, a := range []*model.Account{r.From, r.To} {
		if a == r.From && withdrawn {
			continue
		}
		err := s.repo.Save(ctx, Change{Account: a, RequestID: req.RequestID})
		switch {
		case errors.Is(err, ErrConflict), errors.Is(err, ErrAlreadyApplied):
			// Another writer changed the account, or another delivery
			// of this request saved it: look again.
			r.Conflicts = append(r.Conflicts, err)
			return false, nil
		case err != nil:
			return false, fmt.Errorf("transfer %s: saving %s: %w", req.RequestID, a.ID(), err)
		}
	}
	return true, nil
}
