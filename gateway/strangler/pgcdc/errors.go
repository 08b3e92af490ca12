package pgcdc

import (
	"errors"
	"fmt"
)

// ErrRunning is the error of a [Consumer.Run] called while another Run of
// the same consumer has not returned.
var ErrRunning error = &sentinel{"pgcdc: the consumer is already running", "pgcdc.running"}

// ErrSlotLost is the error of a [Consumer.Setup] or [Consumer.Run] that
// finds the consumer's replication slot gone while the consumer had
// confirmed a position in it ([Consumer.Confirmed] is not 0): the slot
// was dropped (by an administrator, as it held back WAL), or the server
// is a standby promoted in the primary's place, which before PostgreSQL
// 17 carries no logical slot over. The changes committed between the
// lost position and a new slot's creation would not be delivered, so
// the consumer does not create one: see "Failover and lost slots" in the
// package documentation for what to do. The error names the slot;
// match it with errors.Is.
var ErrSlotLost error = &sentinel{"pgcdc: replication slot lost", "pgcdc.slot_lost"}

type sentinel struct{ msg, typ string }

func (e *sentinel) Error() string { return e.msg }

// ErrorType returns the value of the error.type attribute for this error.
func (e *sentinel) ErrorType() string { return e.typ }

// HandlerError is the error [Consumer.Run] returns when the handler failed
// a transaction as many times as [WithMaxAttempts] allows. The
// transaction was not confirmed: the next Run delivers it again.
type HandlerError struct {
	// XID and CommitLSN identify the transaction.
	XID       uint32
	CommitLSN LSN
	// Attempts is how many times the handler was called with it.
	Attempts int
	// Err is the handler's last error.
	Err error
}

func (e *HandlerError) Error() string {
	return fmt.Sprintf("pgcdc: handler failed transaction %d (commit %s) %d times: %v", e.XID, e.CommitLSN, e.Attempts, e.Err)
}

// Unwrap returns the handler's last error.
func (e *HandlerError) Unwrap() error { return e.Err }

// ErrorType returns the value of the error.type attribute for this error.
func (e *HandlerError) ErrorType() string { return "pgcdc.handler" }

// fatalError marks an error that reconnecting cannot cure (a wrong
// configuration of the server, the publication or the slot), so that Run
// returns it instead of trying again.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

func fatal(format string, args ...any) error {
	return &fatalError{fmt.Errorf(format, args...)}
}

func isFatal(err error) bool {
	var f *fatalError
	var h *HandlerError
	return errors.As(err, &f) || errors.As(err, &h) || errors.Is(err, ErrRunning)
}

// panicError is a handler's panic, turned into an error so that the
// consumer retries the transaction instead of crashing the process.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string {
	return fmt.Sprintf("pgcdc: handler panicked: %v\n%s", e.value, e.stack)
}

func (e *panicError) ErrorType() string { return "pgcdc.panic" }

// errNotMade is what the methods of a Consumer not made by New return.
var errNotMade = errors.New("pgcdc: the Consumer was not made by New")
