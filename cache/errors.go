package cache

import (
	"errors"
	"fmt"

	"github.com/otelpatterns/patterns/internal/brief"
)

// ErrNotFound means a key has no value: [Cache.Get] returns it for a miss
// that nothing could fill, a loader returns it (possibly wrapped) to say
// the key does not exist in the source of truth, and a [Store] returns it
// for a missing key.
var ErrNotFound error = &sentinel{"cache: not found", "cache.not_found"}

// ErrQueueFull is returned by [Cache.Set] when the write-behind queue is
// full and the cache was built with [WithWriteBehindReject].
var ErrQueueFull error = &sentinel{"cache: write-behind queue is full", "cache.queue_full"}

// ErrClosed is returned by the methods of a closed [Cache].
var ErrClosed error = &sentinel{"cache: closed", "cache.closed"}

type sentinel struct{ msg, typ string }

func (e *sentinel) Error() string { return e.msg }

// ErrorType returns the value of the error.type attribute for this error.
func (e *sentinel) ErrorType() string { return e.typ }

// DecodeError reports a value in the L2 store that the codec could not
// decode (written by another version of the service, or corrupted). The
// cache treats it as a miss, counts it, and overwrites the value on the
// next load. Its message holds the key shortened to its first 128 bytes;
// Key holds it whole.
type DecodeError struct {
	Key string
	Err error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("cache: decoding the stored value of %s: %v", brief.Quote(e.Key), e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// ErrorType returns "cache.decode".
func (e *DecodeError) ErrorType() string { return "cache.decode" }

// isNotFound reports whether err means "absent".
func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
