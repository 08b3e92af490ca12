package saga

// ErrNotFound is matched by the error of loading or waiting for a saga the
// log does not hold.
var ErrNotFound error = &sentinel{"saga: not found", "saga.not_found"}

// ErrExists is matched by the error of creating a saga whose ID is taken.
var ErrExists error = &sentinel{"saga: exists", "saga.exists"}

// ErrLeaseLost is matched by the error of writing to a saga whose lease
// the writer no longer holds: another orchestrator took it over (after the
// lease expired) or it has finished.
var ErrLeaseLost error = &sentinel{"saga: lease lost", "saga.lease_lost"}

// ErrClosed is matched by the error of using an orchestrator or a
// choreography after Close.
var ErrClosed error = &sentinel{"saga: closed", "saga.closed"}

// ErrInvalidDefinition is matched by the error of [Define] for a definition
// it rejects; the message names the step at fault.
var ErrInvalidDefinition error = &sentinel{"saga: invalid definition", "saga.invalid_definition"}

// ErrUnknownDefinition is matched by the error of resuming a saga whose
// name and version no registered definition has.
var ErrUnknownDefinition error = &sentinel{"saga: unknown definition", "saga.unknown_definition"}

// ErrNotNeedsAttention is matched by the error of [Orchestrator.Retry] or
// [Orchestrator.Resolve] for a saga whose status is not NeedsAttention
// (another call of them may have resolved it first).
var ErrNotNeedsAttention error = &sentinel{"saga: not in status needs_attention", "saga.not_needs_attention"}

type sentinel struct{ msg, typ string }

func (e *sentinel) Error() string { return e.msg }

// ErrorType returns the value of the error.type attribute for this error.
func (e *sentinel) ErrorType() string { return e.typ }
