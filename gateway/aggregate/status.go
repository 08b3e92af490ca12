package aggregate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

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
// upstream's status for reason "status", the cause's type for
// unavailable, unreachable and timeout (as the gateway records them),
// and aggregate.{reason} for the others.
func (e *PartError) ErrorType() string {
	switch {
	case e.Reason == reasonStatus:
		return fmt.Sprint(e.Status)
	case e.Err != nil && (e.Reason == reasonUnavailable || e.Reason == reasonUnreachable || e.Reason == reasonTimeout):
		return telemetry.ErrorTypeString(e.Err)
	}
	return "aggregate." + e.Reason
}

// HTTPStatus is the status of a response that fails because of this
// part: the upstream's own 4xx, 502 for a 5xx or a response that is
// not usable, 503 when no target could take the call, 504 when time
// ran out, 499 when the client went away.
func (e *PartError) HTTPStatus() int {
	switch e.Reason {
	case reasonStatus:
		if e.Status >= 400 && e.Status < 500 {
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
