package gateway

import (
	"errors"
	"io"
	"sync"
	"time"
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
// kept, then the rest as the client sends it. Once the current attempt
// has read more than limit bytes, the request can no longer be sent
// again.
//
// One read of the client's body is made at a time, by the current
// attempt or, until it returns, by one that a later attempt superseded
// while it waited for the client: its bytes are kept whatever the limit
// (so kept is bounded by limit plus a read per attempt), and the
// current attempt, once it has sent what was kept, waits for them. An
// attempt that waits is woken when it is superseded.
type replay struct {
	src   io.ReadCloser
	limit int64

	mu        sync.Mutex
	cond      sync.Cond // on mu: a read of src ended, or the attempt changed
	reading   bool      // a read of src is under way
	kept      []byte
	read      int64 // of src in all
	over      bool  // the current attempt read past limit: kept is gone
	end       error // src's last error: io.EOF once it ended
	gen       int   // the current attempt's
	curClosed bool  // the current attempt's transport closed its body
	finished  bool  // RoundTrip returned: the current attempt is the last
	srcClosed bool
}

func newReplay(src io.ReadCloser, limit int64) *replay {
	r := &replay{src: src, limit: limit}
	r.cond.L = &r.mu
	return r
}

// spent reports whether the body can no longer be sent again.
func (r *replay) spent() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.over
}

// failed reports whether reading the client's body failed: sending it
// again would fail the same way.
func (r *replay) failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.end != nil && r.end != io.EOF
}

// next makes the body of the next attempt, superseding the current one,
// or reports that the body is too long to be sent again.
func (r *replay) next() (io.ReadCloser, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.over {
		return nil, false
	}
	r.gen++
	r.curClosed = false
	r.cond.Broadcast()
	return &replayReader{r: r, gen: r.gen}, true
}

// finish is called when RoundTrip returns. The client's body is closed
// once the last attempt's transport is done with it: now, if it is
// already or no attempt was made.
func (r *replay) finish() {
	r.mu.Lock()
	r.finished = true
	closing := r.gen == 0 || r.curClosed
	r.mu.Unlock()
	if closing {
		r.closeSrc()
	}
}

// closeSrc closes the client's body once. It is not called with r.mu
// held: a server's request body waits, to close, for a read under way,
// which waits for the client; that close is left to a goroutine of its
// own, which ends when the read does.
func (r *replay) closeSrc() {
	r.mu.Lock()
	if r.srcClosed {
		r.mu.Unlock()
		return
	}
	r.srcClosed = true
	reading := r.reading
	r.mu.Unlock()
	if reading {
		go r.src.Close()
		return
	}
	_ = r.src.Close()
}

// replayReader is one attempt's view of a replay.
type replayReader struct {
	r   *replay
	gen int
	off int64

	tt *tryTimer // the attempt's PerTryTimeout, if any
}

// tryTimer is the PerTryTimeout of an attempt whose body streams from
// the client. It is paused while the attempt waits for the client's
// body, so that a slow upload is neither cut short nor charged to the
// target: the bound is on the time the target takes, as it was when
// bodies were read whole before the first attempt. Its fields are
// guarded by the replay's mu.
type tryTimer struct {
	t        *time.Timer
	left     time.Duration // while paused
	deadline time.Time     // while running
	paused   bool
	stopped  bool
}

// startTimer starts b's attempt's PerTryTimeout of d, which calls fire
// when it runs out.
func (b *replayReader) startTimer(d time.Duration, fire func()) {
	b.r.mu.Lock()
	defer b.r.mu.Unlock()
	b.tt = &tryTimer{t: time.AfterFunc(d, fire), deadline: time.Now().Add(d)}
}

// stopTimer stops the attempt's PerTryTimeout and reports whether it
// had run out.
func (b *replayReader) stopTimer() (ranOut bool) {
	b.r.mu.Lock()
	defer b.r.mu.Unlock()
	tt := b.tt
	tt.stopped = true
	return !tt.paused && !tt.t.Stop()
}

// pause and resume are called under r.mu around a wait for the client.
func (b *replayReader) pause() {
	if tt := b.tt; tt != nil && !tt.stopped && !tt.paused && tt.t.Stop() {
		tt.paused, tt.left = true, time.Until(tt.deadline)
	}
}

func (b *replayReader) resume() {
	if tt := b.tt; tt != nil && !tt.stopped && tt.paused {
		tt.paused, tt.deadline = false, time.Now().Add(tt.left)
		tt.t.Reset(tt.left)
	}
}

func (b *replayReader) Read(p []byte) (int, error) {
	r := b.r
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		switch {
		case b.gen != r.gen:
			return 0, errSuperseded
		case b.off < int64(len(r.kept)):
			n := copy(p, r.kept[b.off:])
			b.off += int64(n)
			return n, nil
		case b.off < r.read:
			// Kept no more: the bytes went past the limit. next refuses
			// to make an attempt then, so this is not reached.
			return 0, errSuperseded
		case r.end != nil:
			return 0, r.end
		case len(p) == 0:
			return 0, nil
		}
		if !r.reading {
			break
		}
		// For a superseded attempt's read: its bytes are ours.
		b.pause()
		r.cond.Wait()
		b.resume()
	}

	r.reading = true
	b.pause()
	r.mu.Unlock()
	n, err := r.src.Read(p)
	r.mu.Lock()
	b.resume()
	r.reading = false
	r.cond.Broadcast()
	r.read += int64(n)
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
	if b.gen != r.gen {
		return 0, errSuperseded // the bytes are the next attempt's
	}
	b.off += int64(n)
	return n, err
}

// Close ends the attempt's use of the body. The client's body is closed
// when the last attempt's is.
func (b *replayReader) Close() error {
	r := b.r
	r.mu.Lock()
	closing := false
	if b.gen == r.gen {
		r.curClosed = true
		closing = r.finished
	}
	r.mu.Unlock()
	if closing {
		r.closeSrc()
	}
	return nil
}
