package appsvc

import (
	"context"
	"errors"
	"fmt"

	"github.com/otelpatterns/patterns/examples/bank/model"
)

// MaxAttempts bounds how often a use case decides again when it keeps
// losing races on an account.
const MaxAttempts = 3

// Accounts is the use cases on one account: open, deposit, withdraw and
// look up.
type Accounts struct {
	repo   AccountRepository
	domain Domain
}

// NewAccounts returns the use cases on accounts, loading and saving them
// through repo and calling the domain through domain.
func NewAccounts(repo AccountRepository, domain Domain) (*Accounts, error) {
	if repo == nil {
		return nil, errors.New("appsvc: NewAccounts: repo is nil")
	}
	return &Accounts{repo: repo, domain: domain.withDefaults()}, nil
}

// OpenAccount is the input of [Accounts.Open].
type OpenAccount struct {
	ID, Owner, Currency string
}

// Movement is the input of [Accounts.Deposit] and [Accounts.Withdraw].
type Movement struct {
	ID     string
	Amount model.Money
}

// Open opens a new account.
func (s *Accounts) Open(ctx context.Context, o OpenAccount) (*model.Account, error) {
	return s.execute(ctx, o.ID, true, func(ctx context.Context, a *model.Account) error {
		return s.domain.Open(ctx, model.Opening{Account: a, Owner: o.Owner, Currency: o.Currency})
	})
}

// Deposit adds money to an account.
func (s *Accounts) Deposit(ctx context.Context, m Movement) (*model.Account, error) {
	return s.execute(ctx, m.ID, false, func(ctx context.Context, a *model.Account) error {
		return s.domain.Deposit(ctx, model.Movement{Account: a, Amount: m.Amount})
	})
}

// Withdraw takes money out of an account.
func (s *Accounts) Withdraw(ctx context.Context, m Movement) (*model.Account, error) {
	return s.execute(ctx, m.ID, false, func(ctx context.Context, a *model.Account) error {
		return s.domain.Withdraw(ctx, model.Movement{Account: a, Amount: m.Amount})
	})
}

// Get returns an account as it is stored.
func (s *Accounts) Get(ctx context.Context, id string) (*model.Account, error) {
	return s.repo.Load(ctx, id)
}

// execute loads account id (a new one, when create is set and there is
// none), runs cmd and saves what it raised. When the save loses a race
// with another writer, it loads the account again and runs cmd again,
// which checks its rules against the new state; up to MaxAttempts
// times. A broken rule is returned as it is, with nothing saved.
func (s *Accounts) execute(ctx context.Context, id string, create bool, cmd func(context.Context, *model.Account) error) (*model.Account, error) {
	for attempt := 1; ; attempt++ {
		a, err := s.repo.Load(ctx, id)
		if create && errors.Is(err, ErrNotFound) && a != nil {
			err = nil // a is new, empty, for Open
		}
		if err != nil {
			return nil, err
		}
		if err := cmd(ctx, a); err != nil {
			return a, err
		}
		err = s.repo.Save(ctx, Change{Account: a})
		if !errors.Is(err, ErrConflict) || attempt == MaxAttempts {
			if err != nil {
				return a, fmt.Errorf("saving %s: %w", id, err)
			}
			return a, nil
		}
	}
}
