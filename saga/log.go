package saga

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"
)

// Status is where a saga stands.
type Status string

// The statuses of a saga. Running and Compensating sagas are unfinished:
// [Orchestrator.Recover] resumes them. The others are final.
const (
	// Running: the saga is running its steps forward.
	Running Status = "running"
	// Compensating: a step failed and the saga is undoing the steps that
	// completed.
	Compensating Status = "compensating"
	// Completed: every step completed.
	Completed Status = "completed"
	// Compensated: a step failed and every completed step was undone.
	Compensated Status = "compensated"
	// NeedsAttention: the saga can go neither forward nor back by itself (a
	// compensation, or a retriable step after the pivot, kept failing) and
	// waits for a person; see [WithNeedsAttention]. The person resolves it
	// with [Orchestrator.Retry] or [Orchestrator.Resolve].
	NeedsAttention Status = "needs_attention"
	// Resolved: the saga needed attention, and a person marked it resolved
	// with [Orchestrator.Resolve], giving the reason.
	Resolved Status = "resolved"
)

// Final reports whether s is a status a saga never leaves by itself.
func (s Status) Final() bool {
	return s == Completed || s == Compensated || s == NeedsAttention || s == Resolved
}

// Phase tells running a step's action from running its compensation.
type Phase string

const (
	// Forward is the phase of a step's action.
	Forward Phase = "forward"
	// Compensate is the phase of a step's compensation.
	Compensate Phase = "compensate"
)

// Kind is what a [Transition] of a step records.
type Kind string

const (
	// Started: an attempt began. A started attempt with no outcome after
	// it was cut short by a crash: its outcome is unknown.
	Started Kind = "started"
	// Succeeded: the attempt succeeded. For the forward phase the
	// transition holds the saga data after the step's update.
	Succeeded Kind = "succeeded"
	// Failed: the attempt failed and had no effect.
	Failed Kind = "failed"
	// TimedOut: the attempt ran out of time; whether it had an effect is
	// unknown.
	TimedOut Kind = "timed_out"
	// Retried marks a change of status alone, from NeedsAttention back to
	// Running or Compensating, made by [Orchestrator.Retry]. The other
	// changes of status have no Kind.
	Retried Kind = "retried"
)

// Record is a saga as its [Log] keeps it.
type Record struct {
	// ID identifies the saga; [Orchestrator.Start] returns it.
	ID string
	// Name and Version are those of the saga's [Definition].
	Name    string
	Version int
	// Status is the saga's status after its last transition.
	Status Status
	// Data is the saga data, encoded, as it was at the start; transitions
	// carry its later values.
	Data []byte
	// Trace is the W3C trace context of the run that started the saga, so
	// that a resumed run can link to it.
	Trace map[string]string
	// CreatedAt is when the saga was created, set by the log.
	CreatedAt time.Time
}

// Transition is one change of a saga, appended to its [Log] as it
// happens.
type Transition struct {
	// Seq numbers the saga's transitions from 1, with no gaps.
	Seq int64
	// Status, when not empty, is the saga's new status.
	Status Status
	// Step names the step the transition is about; empty for a change of
	// Status alone.
	Step string
	// Phase, Kind and Attempt (from 1 within the phase) say what happened
	// to the step.
	Phase   Phase
	Kind    Kind
	Attempt int
	// Data is the saga data after a forward step succeeded, encoded, or
	// nil if it did not change.
	Data []byte
	// Error is the message of the error that failed the attempt, or that
	// made the saga change its status; for the change to Resolved, the
	// reason given to [Orchestrator.Resolve]. The orchestrator writes it
	// passed through [ValidText], and at most 8 KiB of that: a longer one
	// is cut, on a character, and followed by the message's length
	// ("…(12345 bytes)").
	Error string
	// At is when the transition was recorded, set by the log.
	At time.Time
}

// Log keeps sagas and their transitions durably, and leases each
// unfinished saga to one orchestrator at a time, so that no two run it at
// once. [MemoryLog] keeps them in memory;
// [github.com/otelpatterns/patterns/saga/pglog] in PostgreSQL.
//
// A lease is held by an owner (an orchestrator's identity) until it
// expires, is released, or the saga reaches a final status. An owner still
// holds an expired lease until another owner claims the saga: Append and
// Renew check the owner, not the clock, so a slow owner loses its work
// only when someone else takes it over.
//
// Every method returns an error matching ctx's error, having changed
// nothing, once ctx is done. Implementations are safe for concurrent use,
// also by several processes sharing the log, and pass the conformance
// suite in [github.com/otelpatterns/patterns/saga/logtest].
//
// Text (a Transition's Error, the keys and values of a Record's Trace)
// may hold any bytes: a log must store it without failing, either as
// given or as [ValidText] returns it (PostgreSQL's text columns, for one,
// refuse NUL bytes and invalid UTF-8). The orchestrator writes only text
// that ValidText leaves as it is; ids, names and steps are 1 to
// [MaxNameLen] bytes of UTF-8 without NUL or '/'.
type Log interface {
	// Create records a new saga with status Running (whatever rec.Status
	// says) and leases it to owner for lease; with owner "", Claim may
	// hand it out at once. It returns an error matching ErrExists if a
	// saga with rec.ID exists. The log keeps copies of rec's Data and
	// Trace; nil Data is loaded back as nil, empty as empty.
	Create(ctx context.Context, rec Record, owner string, lease time.Duration) error

	// Append records ts, in order, as the next transitions of saga id, and
	// the last Status among them, if any, as the saga's status, in one
	// atomic write, if owner holds the saga's lease. A final Status also
	// ends the lease. It returns an error matching ErrLeaseLost, recording
	// nothing, if owner does not hold the lease or a Seq of ts is taken;
	// ErrNotFound if there is no saga id. Appending no transitions does
	// nothing. The orchestrator appends several transitions at once when
	// one event has several: a step succeeded and the next one starts.
	Append(ctx context.Context, id, owner string, ts ...Transition) error

	// Renew extends, to lease from now, the leases that owner holds on the
	// sagas ids, and returns those of ids whose lease it does not hold.
	Renew(ctx context.Context, owner string, lease time.Duration, ids []string) (lost []string, err error)

	// Claim leases to owner for lease up to limit unfinished sagas whose
	// Name is in names and whose lease has expired or was released, oldest
	// first, and returns them. Concurrent claims never return one saga to
	// two owners. A claim may return fewer than limit sagas while others
	// are claimable (rows another claim held were passed over); a limit
	// of 0 or less, or no names, claims nothing.
	Claim(ctx context.Context, owner string, names []string, lease time.Duration, limit int) ([]Record, error)

	// Release ends owner's lease on saga id, if it holds it, so that Claim
	// may hand the saga out at once. Releasing a saga that is unknown or
	// leased to another owner does nothing and is not an error.
	Release(ctx context.Context, id, owner string) error

	// Load returns saga id and its transitions in Seq order, or an error
	// matching ErrNotFound.
	Load(ctx context.Context, id string) (Record, []Transition, error)
}

// Reopener is a [Log] that can hand a saga that stopped in status
// NeedsAttention back to an orchestrator, so that a person can resolve it
// ([Orchestrator.Retry], [Orchestrator.Resolve]). [MemoryLog] and
// [github.com/otelpatterns/patterns/saga/pglog] implement it;
// [github.com/otelpatterns/patterns/saga/logtest] checks it in the logs
// that do.
type Reopener interface {
	// Reopen leases saga id, whose status must be NeedsAttention, to owner
	// for lease, unless another owner holds an unexpired lease on it (from
	// an earlier Reopen). The owner may then Append to the saga as to a
	// saga it created or claimed: a final Status ends the lease again.
	// Claim never hands out such a saga, whatever its lease.
	//
	// It returns an error matching ErrNotFound if there is no saga id, and
	// one matching ErrLeaseLost, leasing nothing, if the saga's status is
	// not NeedsAttention or another owner's lease on it has not expired.
	Reopen(ctx context.Context, id, owner string, lease time.Duration) error
}

// ValidText returns s with each NUL byte, and each run of bytes that is
// not UTF-8, replaced by U+FFFD: text that any [Log] can store. It returns
// s itself, without allocating, when there is nothing to replace.
func ValidText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
