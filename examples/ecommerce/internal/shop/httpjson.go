package shop

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/otelpatterns/patterns/hexagonal"
)

// maxBody bounds the request bodies the services read.
const maxBody = 1 << 20

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// readJSON decodes r's body into v, answering a body that is not JSON as
// a 400 problem (it then returns false).
// A body over maxBody is answered 413, not as malformed JSON: sent again
// as it is, it would fail again.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(v); err != nil {
		if tooLarge := new(http.MaxBytesError); errors.As(err, &tooLarge) {
			hexagonal.WriteProblem(w, &hexagonal.Problem{Status: http.StatusRequestEntityTooLarge,
				Detail: fmt.Sprintf("the body is over %d bytes", tooLarge.Limit)})
			return false
		}
		hexagonal.WriteProblem(w, hexagonal.Errorf(hexagonal.KindInvalid, "the body is not the JSON expected: %v", err))
		return false
	}
	return true
}

// errUnavailable is what a service answers while a fault takes it down:
// 503, which the callers' retry and breaker transports count as a failure.
var errUnavailable = hexagonal.Errorf(hexagonal.KindUnavailable, "the service is unavailable (a scripted fault)")

// isKind reports whether err is a domain error of kind.
func isKind(err error, kind string) bool {
	k, ok := hexagonal.DomainKind(err)
	return ok && k == kind
}
