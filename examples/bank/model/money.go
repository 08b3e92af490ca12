package model

import (
	"fmt"
)

// Money is an amount in a currency, in cents, so that no amount is ever
// rounded. It is a value: two Money are equal when amount and currency
// are.
type Money struct {
	Cents    int64  `json:"cents"`
	Currency string `json:"currency"`
}

// EUR returns cents euro cents.
func EUR(cents int64) Money { return Money{Cents: cents, Currency: "EUR"} }

// String formats m as units, cents and currency: "12.50 EUR".
func (m Money) String() string {
	sign, c := "", m.Cents
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, c/100, c%100, m.Currency)
}

// IsPositive reports whether m is more than nothing.
func (m Money) IsPositive() bool { return m.Cents > 0 }

// Add returns m plus o; both must be in the same currency.
func (m Money) Add(o Money) (Money, error) {
	if m.Currency != o.Currency {
		return m, fmt.Errorf("%w: %s and %s", ErrCurrencyMismatch, m, o)
	}
	return Money{Cents: m.Cents + o.Cents, Currency: m.Currency}, nil
}

// Sub returns m minus o; both must be in the same currency.
func (m Money) Sub(o Money) (Money, error) {
	return m.Add(Money{Cents: -o.Cents, Currency: o.Currency})
}

// Covers reports whether m is at least o, in the same currency.
func (m Money) Covers(o Money) bool { return m.Currency == o.Currency && m.Cents >= o.Cents }
