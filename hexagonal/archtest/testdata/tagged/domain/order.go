// Package domain is clean in the default build; a file behind a build
// tag breaks the rules.
package domain

import "errors"

// ErrEmpty is an empty order's.
var ErrEmpty = errors.New("empty order")
