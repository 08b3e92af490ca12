package infra

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/examples/bank/model"
)

// The names of the stored event types. They are part of the stored data:
// a change of shape gets a new name and an upcaster from the old one, as
// bank.deposited.v0 has.
const (
	TypeAccountOpened = "bank.account_opened.v1"
	TypeDeposited     = "bank.deposited.v1"
	TypeWithdrawn     = "bank.withdrawn.v1"
	// TypeDepositedV0 is the deposit event of an earlier version of the
	// service, which wrote {"value": "12.50", "currency": "EUR"}. Stored
	// events of this type are upcast to Deposited on read.
	TypeDepositedV0 = "bank.deposited.v0"
)

// v0Currency is the one currency the earlier version of the service kept.
const v0Currency = "EUR"

// NewRegistry returns a registry of the account's events, with the
// upcaster of the old deposit event.
func NewRegistry() *eventsource.Registry {
	reg := eventsource.NewRegistry()
	eventsource.Register[model.AccountOpened](reg, TypeAccountOpened)
	eventsource.Register[model.Deposited](reg, TypeDeposited)
	eventsource.Register[model.Withdrawn](reg, TypeWithdrawn)
	reg.Upcast(TypeDepositedV0, upcastDepositedV0)
	return reg
}

// depositedV0 is the shape of a bank.deposited.v0 event: the amount as a
// decimal string, and a currency.
type depositedV0 struct {
	Value    string `json:"value"`
	Currency string `json:"currency"`
}

// upcastDepositedV0 turns a bank.deposited.v0 event into a
// bank.deposited.v1 one.
func upcastDepositedV0(e eventsource.Event) (eventsource.Event, error) {
	var old depositedV0
	if err := json.Unmarshal(e.Data, &old); err != nil {
		return e, err
	}
	if old.Currency != v0Currency {
		return e, fmt.Errorf("deposit in %q; the earlier service kept %s only", old.Currency, v0Currency)
	}
	cents, err := parseCents(old.Value)
	if err != nil {
		return e, err
	}
	data, err := json.Marshal(model.Deposited{Amount: model.Money{Cents: cents, Currency: old.Currency}})
	if err != nil {
		return e, err
	}
	e.Type, e.Data = TypeDeposited, data
	return e, nil
}

// parseCents parses a non-negative decimal amount with at most two
// decimals, such as "12.5" or "12.50", into cents.
func parseCents(s string) (int64, error) {
	units, cents, hasCents := strings.Cut(s, ".")
	bad := fmt.Errorf("bad amount %q", s)
	if units == "" || len(cents) > 2 || (hasCents && cents == "") {
		return 0, bad
	}
	u, err := strconv.ParseUint(units, 10, 40)
	if err != nil {
		return 0, bad
	}
	var c uint64
	if hasCents {
		if c, err = strconv.ParseUint(cents, 10, 8); err != nil {
			return 0, bad
		}
		if len(cents) == 1 {
			c *= 10
		}
	}
	return int64(u*100 + c), nil
}
