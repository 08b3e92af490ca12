package saga

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Start records a new saga of def with data and runs it in the
// background, as [Orchestrator.Start] does, returning its id; use [Wait]
// for its result. The data's type is def's, so the compiler rejects data
// of another type (a pointer to the definition's data type, say), which
// Orchestrator.Start, taking any definition, can only reject when it
// runs.
//
// Start returns Orchestrator.Start's errors, and one for a nil o or def.
func Start[D any](ctx context.Context, o *Orchestrator, def *Definition[D], data D, opts ...StartOption) (string, error) {
	if o == nil {
		return "", errors.New("saga: Start: nil orchestrator")
	}
	if def == nil {
		return "", errors.New("saga: Start: nil definition")
	}
	return o.Start(ctx, def, data, opts...)
}

// Result is how a saga ended: its final status, its data as its steps
// left it, and the error that made it compensate or stop. [Wait] returns
// it.
type Result[D any] struct {
	// Status is the saga's final status: [Completed], [Compensated],
	// [NeedsAttention] or [Resolved].
	Status Status
	// Data is the saga's data as the last step that succeeded left it
	// (as it started, if none did): the results the steps recorded (the
	// shipment's id, say). For a saga that compensated, it holds the
	// results of the steps that were then undone: compensations do not
	// change the data.
	Data D
	// Err is nil for a saga that completed. Otherwise it is a
	// [*StepError], the error that made the saga compensate or need
	// attention (for a [Resolved] saga, the one that made it need
	// attention; the operator's reason is in the log).
	Err error
}

// Wait waits for saga id, of definition def, to end, as
// [Orchestrator.Wait] does, and returns its [Result]: the final status,
// the final data decoded into a D, and the error that made the saga
// compensate or stop. It works for a saga run by o and for one run by
// another orchestrator sharing o's log, in this process or another: the
// result comes from the log, or, for a saga whose run o has in progress
// when Wait is called, from the run, which writes the same to the log.
//
// The error Wait returns is about the waiting, not the saga: ctx's error
// when ctx ends first (the Result then holds the status so far, "" if
// Wait never learnt it), an error matching [ErrNotFound] for an unknown
// id, a failure of the log, an error for a saga of another definition
// (by name: any version of def's name is decoded into a D), for data
// that o's codec cannot decode into a D (the Result then holds the status
// and Err), or for a nil o or def.
func Wait[D any](ctx context.Context, o *Orchestrator, def *Definition[D], id string) (Result[D], error) {
	if o == nil {
		return Result[D]{}, errors.New("saga: Wait: nil orchestrator")
	}
	if def == nil {
		return Result[D]{}, errors.New("saga: Wait: nil definition")
	}
	name := def.Name()
	e, err := o.wait(ctx, id, func(got string) error {
		if got != name {
			return fmt.Errorf("saga: Wait saga %q: it is a saga of definition %q, not %q", id, got, name)
		}
		return nil
	})
	res := Result[D]{Status: e.status}
	if err != nil {
		return res, err
	}
	if e.failure != nil {
		res.Err = e.failure
	}
	if e.data != nil {
		if err := o.codec.Unmarshal(e.data, &res.Data); err != nil {
			var zero D
			res.Data = zero
			return res, fmt.Errorf("saga: Wait saga %q: decoding the data: %w", id, err)
		}
	}
	return res, nil
}

// StepError is the error that made a saga compensate or need attention:
// [Result.Err], and the error of [Orchestrator.Wait] for a saga that did
// not complete. Match it with [errors.As].
//
// The log keeps the message of the error alone, so a StepError read from
// the log (for a saga that ran elsewhere, before a crash, or that had
// ended before the call of Wait, and by a run that resumed the saga after
// a crash or that [Orchestrator.Retry] started) has only its fields, and
// Unwrap returns nil. When Wait finds in its orchestrator the run in
// progress that met the error, Unwrap returns the error itself, with its
// chain ([retry.Error] and the step's own error, which [errors.Is]
// finds): do not rely on it for what a saga run elsewhere, or resumed
// after a crash, must decide; compare Step and Message instead.
type StepError struct {
	// Step is the step whose action failed (Phase [Forward]) or whose
	// compensation failed (Phase [Compensate]; when several failed, the
	// first in the definition's order, and Message names the others). It is "" when no one step is
	// the cause: steps a crash interrupted whose outcome is unknown, or a
	// log the orchestrator cannot read.
	Step  string
	Phase Phase
	// Message is the rest of the error's message: as the log keeps it
	// (passed through [ValidText] and cut to 8 KiB, see [Transition]), or
	// whole when Unwrap returns the error itself.
	Message string

	err error
}

// Error returns the message the log keeps: "step <name>: <message>",
// "compensation of step <name>: <message>", or the message alone when
// Step is empty.
func (e *StepError) Error() string {
	switch {
	case e.Step == "":
		return e.Message
	case e.Phase == Compensate:
		return "compensation of step " + strconv.Quote(e.Step) + ": " + e.Message
	}
	return "step " + strconv.Quote(e.Step) + ": " + e.Message
}

// Unwrap returns the error the StepError stands for, if the saga ran in
// this orchestrator, or nil.
func (e *StepError) Unwrap() error { return e.err }

// failureOf returns the StepError of a run's failure, nil for none.
func failureOf(err error) *StepError {
	if err == nil {
		return nil
	}
	if l, ok := err.(*loggedError); ok {
		// Read from the log by a resumed or retried run: there is no
		// chain to unwrap, as for a failure Wait reads from the log.
		return parseFailure(l.msg, nil)
	}
	return parseFailure(err.Error(), err)
}

// stepPrefixes are how the orchestrator's failure messages name their
// step.
var stepPrefixes = [...]struct {
	prefix string
	phase  Phase
}{{"step ", Forward}, {"compensation of step ", Compensate}}

// parseFailure returns the StepError of the failure message msg, which
// cause (nil for one read from the log) has.
func parseFailure(msg string, cause error) *StepError {
	for _, p := range stepPrefixes {
		rest, ok := strings.CutPrefix(msg, p.prefix)
		if !ok {
			continue
		}
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			break
		}
		step, err := strconv.Unquote(q)
		after, ok := strings.CutPrefix(rest[len(q):], ": ")
		if err != nil || !ok || step == "" {
			break
		}
		e := &StepError{Step: step, Phase: p.phase, Message: after, err: cause}
		if e.Error() == msg {
			return e
		}
		break
	}
	return &StepError{Message: msg, err: cause}
}
