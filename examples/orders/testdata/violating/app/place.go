// Package app keeps the rule: it imports only the domain.
package app

import "example.com/orders-violating/domain"

// Place places an order of n lines.
func Place(n int) error {
	if n == 0 {
		return domain.ErrEmptyOrder
	}
	return nil
}
