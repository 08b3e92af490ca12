package circuitbreaker

import "strconv"

// State is the state of a [Breaker].
type State uint8

// The states of a breaker. The zero value is StateClosed.
const (
	// StateClosed lets every call through and watches their outcomes.
	StateClosed State = iota
	// StateOpen rejects every call with an error matching ErrOpen, until
	// the open duration has passed (or, after Breaker.Trip, until
	// Breaker.Reset).
	StateOpen
	// StateHalfOpen lets a limited number of probe calls through to find out
	// whether the dependency has recovered; other calls are rejected with an
	// error matching ErrTooManyRequests.
	StateHalfOpen
)

const numStates = 3

// String returns "closed", "open" or "half-open", the value of the
// circuitbreaker.state attribute.
func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateOpen:
		return "open"
	case StateHalfOpen:
		return "half-open"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Outcome is how a finished call counts towards the breaker's decision, as
// returned by the classifier set with [WithClassifier].
type Outcome uint8

// The outcomes of a call.
const (
	// Success counts as a healthy call.
	Success Outcome = iota
	// Failure counts against the dependency.
	Failure
	// Ignored does not count at all: the call is as if it never happened
	// (a half-open probe slot it held is freed).
	Ignored
)

// String returns "success", "failure" or "ignored".
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Ignored:
		return "ignored"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}
