// Package domain is the order system's core: the order aggregate, its
// value objects ([OrderID], [Money], [Line]), the events that record what
// happened to an order, and the rules they obey (an order has lines, a
// cancelled order is not paid, an order is paid once).
//
// It imports nothing but the standard library: no HTTP, no database, not
// even the hexagonal package. Its errors tell their kind through a
// DomainKind method returning a plain string, which is all that
// hexagonal.DomainError asks, so the edge answers them with the right
// status without the domain knowing there is an edge.
package domain
