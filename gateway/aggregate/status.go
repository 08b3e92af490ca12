package aggregate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// The reasons a part fails, the "error" of its entry in the document's
// "_partial" or "_failed" field.
const (
	reasonTimeout     = "timeout"     // its Timeout or the request's deadline ran out
	reasonUnavailable = "unavailable" // no target could take it (breakers open, none in service, no such upstream)
	reasonUnreachable = "unreachable" // the upstream could not be reached or broke off
	reasonStatus      = "status"      // the upstream answered with a status outside 2xx
	reasonTooLarge    = "too_large"   // the body was over MaxBytes
	reasonInvalid     = "invalid"     // the body was not JSON
	reasonRequest     = "request"     // the request could not be made (a field of an earlier part missing)
	reasonDependency  = "dependency"  // a part it depends on failed
	reasonCanceled    = "canceled"    // the client went away, or a required part failed first
)

// PartError is the failure of one part: why, and the upstream's status
// when it answered. Its JSON form is the entry of the part in the
// document's "_partial" (or, for a required part, "_failed") field.
type PartError struct {
	// Part is the part's name.
	Part string `json:"-"`
	// Reason is why it failed: timeout, unavailable, unreachable, status,
	// too_large, invalid, request, dependency or canceled.
	Reason string `json:"error"`
	// Status is the upstream's status, for reason "status".
	Status int `json:"status,omitempty"`
	// Err is the cause.
	Err error `json:"-"`

	// challenge holds the WWW-Authenticate values of an upstream's 401,
	// without which the 401 is not passed on (see HTTPStatus).
	challenge []string
}

func (e *PartError) Error() string {
	s := fmt.Sprintf("aggregate: part %q: %s", e.Part, e.Reason)
	if e.Status != 0 {
		s += fmt.Sprintf(" (%d)", e.Status)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *PartError) Unwrap() error { return e.Err }

// ErrorType returns the value of the error.type attribute: the
// upstream's status for reason "status"; for unavailable, unreachable
// and timeout, the type the cause carries as the gateway records it
// (gateway.upstream_unavailable, gateway.attempt_timeout,
// context.DeadlineExceeded); and aggregate.{reason} otherwise, also
// when the cause is a plain transport error: its Go type
// (net/url.Error, net.OpError) would say less than the reason does.
func (e *PartError) ErrorType() string {
	switch {
	case e.Reason == reasonStatus:
		return strconv.Itoa(e.Status)
	case e.Err != nil && typedCause(e.Err) &&
		(e.Reason == reasonUnavailable || e.Reason == reasonUnreachable || e.Reason == reasonTimeout):
		return telemetry.ErrorTypeString(e.Err)
	}
	return "aggregate." + e.Reason
}

// typedCause reports whether err's chain has a stable error.type of its
// own: a type with an ErrorType method (the gateway's errors, through
// the *url.Error of http.Client), or the context's errors.
func typedCause(err error) bool {
	var typed interface{ ErrorType() string }
	return (errors.As(err, &typed) && typed.ErrorType() != "") ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// HTTPStatus is the status of a response that fails because of this
// part: the upstream's own 4xx, 502 for a 5xx or a response that is
// not usable, 503 when no target could take the call, 504 when time
// ran out, 499 when the client went away.
//
// A 4xx about the gateway's own hop to the upstream rather than the
// client's request is not the client's to act on, and becomes 502: 407
// (authenticate to a proxy), 408, 411, 413, 414, 417, 421 (retry on
// another connection), 426 and 431. A 401 is passed on only with the
// upstream's WWW-Authenticate challenge, which the response carries
// (RFC 9110, 15.5.2, requires one); without it, 502.
func (e *PartError) HTTPStatus() int {
	switch e.Reason {
	case reasonStatus:
		switch {
		case e.Status == http.StatusUnauthorized && len(e.challenge) == 0, hopStatus(e.Status):
			return http.StatusBadGateway
		case e.Status >= 400 && e.Status < 500:
			return e.Status
		}
		return http.StatusBadGateway
	case reasonUnavailable:
		return http.StatusServiceUnavailable
	case reasonTimeout:
		return http.StatusGatewayTimeout
	case reasonCanceled:
		return gateway.StatusClientClosedRequest
	}
	return http.StatusBadGateway
}

// hopStatus reports whether an upstream's 4xx is about the gateway's
// request to it (its connection, its proxy, the size or form of what
// the gateway sent) and not about the client's.
func hopStatus(code int) bool {
	switch code {
	case http.StatusProxyAuthRequired, http.StatusRequestTimeout, http.StatusLengthRequired,
		http.StatusRequestEntityTooLarge, http.StatusRequestURITooLong, http.StatusExpectationFailed,
		http.StatusMisdirectedRequest, http.StatusUpgradeRequired, http.StatusRequestHeaderFieldsTooLarge:
		return true
	}
	return false
}

// stale reports whether a cached answer may stand in for the part: the
// upstream is down or broken, not saying the resource is gone or
// refused (a 4xx), and the client is still there.
func (e *PartError) stale() bool {
	switch e.Reason {
	case reasonTimeout, reasonUnavailable, reasonUnreachable, reasonTooLarge, reasonInvalid:
		return true
	case reasonStatus:
		return e.Status >= 500
	}
	return false
}

// transportFailure classifies an error of the gateway's transport.
// partCtx is the part's context, in the request's.
func transportFailure(name string, err error, partCtx, reqCtx context.Context) *PartError {
	pe := &PartError{Part: name, Err: err}
	typ := telemetry.ErrorTypeString(err)
	var ne net.Error
	switch {
	case errors.Is(reqCtx.Err(), context.Canceled):
		pe.Reason = reasonCanceled
	case errors.Is(err, gateway.ErrUnavailable), errors.Is(err, gateway.ErrUnknownUpstream):
		// A name the live table lacks is a 503 too, as gateway.Proxy
		// answers it.
		pe.Reason = reasonUnavailable
	case typ == "gateway.attempt_timeout", errors.Is(err, context.DeadlineExceeded),
		errors.Is(partCtx.Err(), context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		pe.Reason = reasonTimeout
	case errors.Is(partCtx.Err(), context.Canceled):
		pe.Reason = reasonCanceled // a required part of the stage failed first
	default:
		pe.Reason = reasonUnreachable
	}
	return pe
}
