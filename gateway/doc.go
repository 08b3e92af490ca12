// Package gateway is an API gateway to embed in a Go service: a
// [net/http.Handler] that routes requests to upstream services, balancing
// load, checking health, authenticating and rate-limiting them, with
// OpenTelemetry spans and metrics built in.
//
// This package is being built (issue 15): so far it holds the request
// context that its middleware share ([Principal], [ClientIP],
// [RouteFrom]).
package gateway
