package gateway

import (
	"errors"
	"io"
	"sync"
)

// errSuperseded ends a read of a request body by an attempt that a later
// attempt replaced: the transport may still be sending it, and what it
// would read belongs to the next attempt.
var errSuperseded = errors.New("gateway: a later attempt took over the request body")

// replay is the body of a request that may be sent more than once. The
// first attempt streams it as the client sends it, so that a call whose
// client waits for an answer before it ends its body (a gRPC stream, any
// full-duplex exchange) is not held up; what the attempts read is kept,
// up to limit bytes, so that a later attempt sends the same bytes: those
// kept, then the rest as the client sends it. Once more than limit bytes
// have been read, the request can no longer be sent again.
//
// Only the current attempt reads from the client. A superseded attempt's
// read that was already waiting for the client when the next attempt
// began is kept whatever the limit (one read more, at most): the next
// attempt needs it.
type replay struct {
	src   io.ReadCloser
	limit int64

	reading sync.Mutex // held while src is read

	mu        sync.Mutex
	kept      []byte
	read      int64 // of src in all
	over      bool  // more than limit read: kept is gone
	end       error // src's last error: io.EOF once it ended
	gen       int   // the current attempt's
	curClosed bool  // the current attempt's transport closed its body
	finished  bool  // RoundTrip returned: the current attempt is the last
	srcClosed bool
}

func newReplay(src io.ReadCloser, limit int64) *replay {
	return &replay{src: src, limit: limit}
}

// next makes the body of the next attempt, or reports that the body is
// too long to be sent again.
func (r *replay) next() (io.ReadCloser, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.over {
		return nil, false
	}
	r.gen++
	r.curClosed = false
	return &replayReader{r: r, gen: r.gen}, true
}

// finish is called when RoundTrip returns. The client's body is closed
// once the last attempt's transport is done with it: now, if it is
// already or no attempt was made.
func (r *replay) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finished = true
	if r.gen == 0 || r.curClosed {
		r.closeSrc()
	}
}

func (r *replay) closeSrc() {
	if !r.srcClosed {
		r.srcClosed = true
		_ = r.src.Close()
	}
}

// replayReader is one attempt's view of a replay.
type replayReader struct {
	r   *replay
	gen int
	off int64
}

func (b *replayReader) Read(p []byte) (int, error) {
	r := b.r
	r.reading.Lock()
	defer r.reading.Unlock()
	r.mu.Lock()
	if b.gen != r.gen {
		r.mu.Unlock()
		return 0, errSuperseded
	}
	if b.off < int64(len(r.kept)) {
		n := copy(p, r.kept[b.off:])
		b.off += int64(n)
		r.mu.Unlock()
		return n, nil
	}
	if b.off < r.read {
		// Kept no more: an earlier attempt read past the limit. next
		// refuses to make an attempt then, so this is not reached.
		r.mu.Unlock()
		return 0, errSuperseded
	}
	if r.end != nil {
		err := r.end
		r.mu.Unlock()
		return 0, err
	}
	r.mu.Unlock()

	n, err := r.src.Read(p)

	r.mu.Lock()
	defer r.mu.Unlock()
	r.read += int64(n)
	b.off += int64(n)
	switch {
	case r.over:
	case b.gen != r.gen || int64(len(r.kept))+int64(n) <= r.limit:
		r.kept = append(r.kept, p[:n]...)
	default:
		r.over, r.kept = true, nil
	}
	if err != nil {
		r.end = err
	}
	return n, err
}

// Close ends the attempt's use of the body. The client's body is closed
// when the last attempt's is.
func (b *replayReader) Close() error {
	r := b.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if b.gen == r.gen {
		r.curClosed = true
		if r.finished {
			r.closeSrc()
		}
	}
	return nil
}
