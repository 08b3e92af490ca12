package eventsource

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxCommandIDLen is the length in bytes of the longest command ID that
// [Store.Append] accepts.
const MaxCommandIDLen = 200

type commandIDKey struct{}

// WithCommandID returns a copy of ctx carrying the ID of the command whose
// events are appended under it. A [Store.Append] under the returned
// context records the pair (id, stream) with its events, in the same
// transaction, and appends nothing if the pair is recorded already: see
// [ErrDuplicateCommand]. The ID is checked by Append, not here: an empty,
// over-long (see [MaxCommandIDLen]) or non-UTF-8 ID, or one holding a NUL
// byte, makes Append fail with an error matching [ErrInvalidArgument].
//
// Use an ID that the sender of the command chose (an idempotency key), so
// that the sender's retries carry the same one.
func WithCommandID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, commandIDKey{}, id)
}

// CommandID returns the command ID that ctx carries, if any: see
// [WithCommandID].
func CommandID(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(commandIDKey{}).(string)
	return id, ok
}

// CheckCommandID returns an error matching [ErrInvalidArgument] unless id
// is a command ID that every store accepts: not empty, at most
// [MaxCommandIDLen] bytes of valid UTF-8 and no NUL byte. Stores call it
// on the ID of ctx before an append; a service may call it on an
// idempotency key it receives, to reject a bad one before handling the
// command.
func CheckCommandID(id string) error {
	var why []string
	switch {
	case id == "":
		why = append(why, "is empty")
	case len(id) > MaxCommandIDLen:
		why = append(why, fmt.Sprintf("is %d bytes long; at most %d", len(id), MaxCommandIDLen))
	}
	if !utf8.ValidString(id) {
		why = append(why, "is not valid UTF-8")
	}
	if strings.IndexByte(id, 0) >= 0 {
		why = append(why, "holds a NUL byte")
	}
	if len(why) == 0 {
		return nil
	}
	if len(id) > 40 {
		id = id[:40] + "…"
	}
	return invalid("command id %q %s", id, strings.Join(why, " and "))
}

// CommandLog is implemented by stores that can say whether a command has
// taken effect before it is handled again; [MemoryStore] and
// [github.com/otelpatterns/patterns/eventsource/pgstore] do. A command handler that decides on an
// aggregate's state may decide otherwise once its own events are in the
// stream (a withdrawal retried after it succeeded finds the money gone),
// so a retried command should be recognised before its handler runs, not
// only at [Store.Append].
//
// The answers are snapshots: a command being appended concurrently may be
// recorded just after. Append's check, in the append's transaction, is
// the one that holds.
type CommandLog interface {
	// CommandRecorded reports whether an append under commandID (see
	// WithCommandID) has succeeded, on any stream.
	CommandRecorded(ctx context.Context, commandID string) (bool, error)
	// CommandRecordedIn reports whether an append under commandID to
	// the stream streamID has succeeded: the pair that Append checks.
	CommandRecordedIn(ctx context.Context, commandID, streamID string) (bool, error)
}
