package auth

import (
	"errors"
	"net/http"
)

// Reason is why a request failed authentication or authorisation: one of a
// small fixed set, recorded as gateway.auth.reason. It says more than the
// response does, which carries only the standard error code (RFC 6750).
type Reason string

// The reasons a request fails.
const (
	// ReasonMissing: no credentials on a route that requires them.
	ReasonMissing Reason = "missing"
	// ReasonMalformed: a bearer token that is not a well-formed JWT, two
	// Authorization headers, a token over the size limit, or a header with
	// critical extensions ("crit").
	ReasonMalformed Reason = "malformed"
	// ReasonUnknownKey: no configured key has the token's key ID, even
	// after the JWKS refresh it may trigger, or the key found is unusable.
	ReasonUnknownKey Reason = "unknown_key"
	// ReasonAlgorithm: the token's algorithm is not the one configured for
	// its key ("none" and HS/RS confusion end here).
	ReasonAlgorithm Reason = "algorithm"
	// ReasonSignature: the signature does not verify.
	ReasonSignature Reason = "signature"
	// ReasonExpired: exp is past, beyond the leeway.
	ReasonExpired Reason = "expired"
	// ReasonNotYetValid: nbf (or iat) is in the future, beyond the leeway.
	ReasonNotYetValid Reason = "not_yet_valid"
	// ReasonIssuer: iss is not the configured issuer.
	ReasonIssuer Reason = "issuer"
	// ReasonAudience: aud names none of the configured audiences.
	ReasonAudience Reason = "audience"
	// ReasonClaims: a required claim is missing (exp always; iss and aud
	// when configured; those of [WithRequiredClaims]) or has the wrong type.
	ReasonClaims Reason = "claims"
	// ReasonAPIKey: an API key that matches none of the configured keys.
	ReasonAPIKey Reason = "api_key"
	// ReasonForbidden: authenticated, but without a role or scope the
	// route requires (403).
	ReasonForbidden Reason = "forbidden"
)

// reasons lists every Reason, in the order of their index.
var reasons = [...]Reason{
	ReasonMissing, ReasonMalformed, ReasonUnknownKey, ReasonAlgorithm, ReasonSignature,
	ReasonExpired, ReasonNotYetValid, ReasonIssuer, ReasonAudience, ReasonClaims,
	ReasonAPIKey, ReasonForbidden,
}

const numReasons = len(reasons)

func (r Reason) index() int {
	for i, x := range reasons {
		if x == r {
			return i
		}
	}
	return -1
}

// ErrUnauthenticated matches (with [errors.Is]) every [*Error] whose
// reason answers 401; ErrForbidden those that answer 403.
var (
	ErrUnauthenticated = errors.New("auth: unauthenticated")
	ErrForbidden       = errors.New("auth: forbidden")
)

// Error is the error of a request that failed authentication or
// authorisation. Its message says why, for logs; the response says only
// the standard error code.
type Error struct {
	Reason Reason
	err    error
}

func (e *Error) Error() string {
	msg := "auth: " + string(e.Reason)
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	return msg
}

// Unwrap returns the underlying cause (a golang-jwt error, say), if any.
func (e *Error) Unwrap() error { return e.err }

// Is makes errors.Is(err, ErrUnauthenticated) and errors.Is(err,
// ErrForbidden) true for the matching reasons.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrUnauthenticated:
		return e.Reason != ReasonForbidden
	case ErrForbidden:
		return e.Reason == ReasonForbidden
	}
	return false
}

// ErrorType returns "gateway.auth." and the reason, for error.type.
func (e *Error) ErrorType() string { return "gateway.auth." + string(e.Reason) }

// StatusCode returns the HTTP status the failure answers: 403 for
// [ReasonForbidden], 401 for the others.
func (e *Error) StatusCode() int {
	if e.Reason == ReasonForbidden {
		return http.StatusForbidden
	}
	return http.StatusUnauthorized
}

func fail(r Reason, err error) *Error { return &Error{Reason: r, err: err} }

// Errors made once: the common failures allocate nothing.
var (
	errMissing = &Error{Reason: ReasonMissing}
	errAPIKey  = &Error{Reason: ReasonAPIKey}
)
