package eventsource

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/otelpatterns/patterns/internal/brief"
)

// ErrConcurrencyConflict is matched, with [errors.Is], by the error of an
// append whose expected version did not match the stream; [errors.As] to a
// [*ConflictError] gives the versions.
var ErrConcurrencyConflict error = &sentinel{"eventsource: concurrency conflict", "eventsource.concurrency_conflict"}

// ErrUnknownEventType is matched by the error of decoding an event whose
// type no [Registry] entry or upcaster knows.
var ErrUnknownEventType error = &sentinel{"eventsource: unknown event type", "eventsource.unknown_event_type"}

// ErrInvalidArgument is matched by the error of a call with bad input: an
// append with an empty stream id, a negative [Exact] version, no events
// or more than [MaxBatch], an event without a type, text that is not
// valid UTF-8 or holds a NUL byte, a bad command ID ([CheckCommandID]);
// a nil aggregate, event, registry or repository. The message names the
// argument.
var ErrInvalidArgument error = &sentinel{"eventsource: invalid argument", "eventsource.invalid_argument"}

// ErrNotFound is matched by the error of loading an aggregate whose stream
// has no events.
var ErrNotFound error = &sentinel{"eventsource: not found", "eventsource.not_found"}

// ErrDuplicateCommand is matched by the error of an append under a command
// ID (see [WithCommandID]) that is recorded already with the same stream:
// the command has taken effect on that stream, and the append added
// nothing. [errors.As] to a [*DuplicateCommandError] gives the IDs.
var ErrDuplicateCommand error = &sentinel{"eventsource: duplicate command", "eventsource.duplicate_command"}

// ErrEventIDTaken is matched by the error of an append of an event whose
// ID is stored already in another stream. An ID stored in the same stream
// makes the append a retry (the event is not written twice); in another
// stream it is a mistake, such as a copied event or a reused ID, and the
// append adds nothing. [errors.As] to a [*EventIDTakenError] gives the
// ID and both streams.
var ErrEventIDTaken error = &sentinel{"eventsource: event id taken by another stream", "eventsource.event_id_taken"}

// ErrSnapshotNotSaved is matched by the error of a [Repository.Save] that
// saved the events but not the snapshot that was due; [errors.As] to a
// [*SnapshotError] gives the stream, version and cause. The save as such
// succeeded: loads replay the events past the previous snapshot instead.
var ErrSnapshotNotSaved error = &sentinel{"eventsource: snapshot not saved", "eventsource.snapshot_not_saved"}

type sentinel struct{ msg, typ string }

func (e *sentinel) Error() string { return e.msg }

// ErrorType returns the value of the error.type attribute for this error.
func (e *sentinel) ErrorType() string { return e.typ }

// ConflictError is the error of an append that expected another stream
// version than the stream has.
type ConflictError struct {
	StreamID string
	Expected ExpectedVersion
	Actual   int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("eventsource: stream %s is at version %d, expected %s", brief.Quote(e.StreamID), e.Actual, e.Expected)
}

// Is matches [ErrConcurrencyConflict].
func (e *ConflictError) Is(target error) bool { return target == ErrConcurrencyConflict }

// ErrorType returns "eventsource.concurrency_conflict".
func (e *ConflictError) ErrorType() string { return "eventsource.concurrency_conflict" }

// SnapshotError is the error of a [Repository.Save] whose events were saved
// but whose snapshot was not.
type SnapshotError struct {
	StreamID string
	Version  int64 // the version the events were saved at
	Err      error
}

func (e *SnapshotError) Error() string {
	return fmt.Sprintf("eventsource: events of stream %s saved up to version %d, but not the snapshot: %v",
		brief.Quote(e.StreamID), e.Version, e.Err)
}

// Unwrap returns the cause.
func (e *SnapshotError) Unwrap() error { return e.Err }

// Is matches [ErrSnapshotNotSaved].
func (e *SnapshotError) Is(target error) bool { return target == ErrSnapshotNotSaved }

// ErrorType returns "eventsource.snapshot_not_saved".
func (e *SnapshotError) ErrorType() string { return "eventsource.snapshot_not_saved" }

// EventIDTakenError is the error of an append of an event whose ID is
// stored in another stream.
type EventIDTakenError struct {
	ID       uuid.UUID
	StreamID string // the stream of the append
	StoredIn string // the stream that holds the event
}

func (e *EventIDTakenError) Error() string {
	return fmt.Sprintf("eventsource: event %s cannot be appended to stream %s: it is stored in stream %s",
		e.ID, brief.Quote(e.StreamID), brief.Quote(e.StoredIn))
}

// Is matches [ErrEventIDTaken].
func (e *EventIDTakenError) Is(target error) bool { return target == ErrEventIDTaken }

// ErrorType returns "eventsource.event_id_taken".
func (e *EventIDTakenError) ErrorType() string { return "eventsource.event_id_taken" }

// DuplicateCommandError is the error of an append under a command ID that
// is recorded already with the stream.
type DuplicateCommandError struct {
	CommandID string
	StreamID  string
}

func (e *DuplicateCommandError) Error() string {
	return fmt.Sprintf("eventsource: command %s has already appended to stream %s", brief.Quote(e.CommandID), brief.Quote(e.StreamID))
}

// Is matches [ErrDuplicateCommand].
func (e *DuplicateCommandError) Is(target error) bool { return target == ErrDuplicateCommand }

// ErrorType returns "eventsource.duplicate_command".
func (e *DuplicateCommandError) ErrorType() string { return "eventsource.duplicate_command" }

func (v ExpectedVersion) String() string {
	switch {
	case v == Any:
		return "any version"
	case v == NoStream:
		return "no stream"
	case v == negativeExact:
		return "a negative exact version"
	case v < -1:
		return fmt.Sprintf("invalid version %d", int64(v))
	}
	return fmt.Sprintf("version %d", int64(v))
}

// invalid returns an error matching ErrInvalidArgument.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, args...)...)
}

// checkAppend is storekit.CheckAppend, which documents it.
func checkAppend(streamID string, expected ExpectedVersion, events []NewEvent) error {
	var errs []error
	if streamID == "" {
		errs = append(errs, invalid("empty stream id"))
	} else if err := checkText(streamID); err != nil {
		errs = append(errs, invalid("stream id %s %w", brief.Quote(streamID), err))
	}
	if expected < Any {
		errs = append(errs, invalid("expected %v", expected))
	}
	if len(events) == 0 {
		errs = append(errs, invalid("no events to append"))
	}
	if len(events) > MaxBatch {
		errs = append(errs, invalid("%d events in one append; at most %d", len(events), MaxBatch))
	}
	for i, e := range events {
		if e.Type == "" {
			errs = append(errs, invalid("event %d has no type", i))
		} else if err := checkText(e.Type); err != nil {
			errs = append(errs, invalid("event %d has type %s, which %w", i, brief.Quote(e.Type), err))
		}
		for k, v := range e.Metadata {
			if err := errors.Join(checkText(k), checkText(v)); err != nil {
				errs = append(errs, invalid("event %d has metadata %s: %s, which %w", i, brief.Quote(k), brief.Quote(v), err))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// checkSnapshot is storekit.CheckSnapshot, which documents it.
func checkSnapshot(s Snapshot) error {
	var errs []error
	if s.StreamID == "" {
		errs = append(errs, invalid("empty stream id"))
	} else if err := checkText(s.StreamID); err != nil {
		errs = append(errs, invalid("stream id %s %w", brief.Quote(s.StreamID), err))
	}
	if s.Version < 0 {
		errs = append(errs, invalid("negative version %d", s.Version))
	}
	return errors.Join(errs...)
}

var (
	errNotUTF8 = errors.New("is not valid UTF-8")
	errNUL     = errors.New("holds a NUL byte")
)

// checkText returns why s is not text every store can keep, or nil.
func checkText(s string) error {
	switch {
	case !utf8.ValidString(s):
		return errNotUTF8
	case strings.IndexByte(s, 0) >= 0:
		return errNUL
	}
	return nil
}
