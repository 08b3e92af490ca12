package domain

import (
	"fmt"

	"example.com/violating/driver/fakepq"
)

// Money is an amount in cents.
type Money int64

func (m Money) String() string { return fmt.Sprintf("%d.%02d (%s)", m/100, m%100, fakepq.Name) }
