// Package domain breaks the dependency rule on purpose: it answers HTTP
// itself, so it imports net/http, which the domain must not know.
package domain

import (
	"errors"
	"net/http"
)

// ErrEmptyOrder is a broken rule.
var ErrEmptyOrder = errors.New("an order needs at least one line")

// Status answers err with an HTTP status: the edge's job, not the
// domain's.
func Status(err error) int {
	if errors.Is(err, ErrEmptyOrder) {
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}
