package gateway

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

// closeCounter is a client body that counts its Close calls.
type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

// A read that a superseded attempt was already waiting on when the next
// attempt began ends with errSuperseded, and its bytes are the next
// attempt's, which first gets what was kept without waiting for it.
func TestReplayKeepsSupersededRead(t *testing.T) {
	pr, pw := io.Pipe()
	r := newReplay(pr, 1<<10)
	first, _ := r.next()
	go func() { _, _ = pw.Write([]byte("hello\n")) }()
	if b := make([]byte, 16); func() string { n, _ := first.Read(b); return string(b[:n]) }() != "hello\n" {
		t.Fatal("the first attempt did not read the client's first bytes")
	}
	errc := make(chan error)
	go func() {
		_, err := first.Read(make([]byte, 16))
		errc <- err
	}()
	// Wait until first waits on the client.
	for {
		r.mu.Lock()
		reading := r.reading
		r.mu.Unlock()
		if reading {
			break
		}
		time.Sleep(time.Millisecond)
	}
	second, ok := r.next()
	if !ok {
		t.Fatal("next() refused a body within the limit")
	}
	b := make([]byte, 16)
	if n, err := second.Read(b); string(b[:n]) != "hello\n" || err != nil {
		t.Fatalf("the next attempt read (%q, %v) while the superseded one waited; want the kept bytes at once", b[:n], err)
	}
	go func() {
		_, _ = pw.Write([]byte("abc"))
		_ = pw.CloseWithError(io.EOF)
	}()
	if err := <-errc; !errors.Is(err, errSuperseded) {
		t.Errorf("the superseded read ended with %v; want errSuperseded", err)
	}
	rest, err := io.ReadAll(second)
	if string(rest) != "abc" || err != nil {
		t.Errorf("the next attempt read on (%q, %v); want (abc, nil)", rest, err)
	}
}

// A body read past the limit cannot be sent again; one of exactly the
// limit can.
func TestReplayLimit(t *testing.T) {
	for _, c := range []struct {
		body string
		ok   bool
	}{{"abcdef", true}, {"abcdefg", false}} {
		r := newReplay(io.NopCloser(bytes.NewReader([]byte(c.body))), 6)
		first, _ := r.next()
		b, err := io.ReadAll(first)
		if string(b) != c.body || err != nil {
			t.Fatalf("first attempt read (%q, %v); want (%q, nil)", b, err, c.body)
		}
		second, ok := r.next()
		if ok != c.ok {
			t.Fatalf("%d bytes over a limit of 6: next() = %v; want %v", len(c.body), ok, c.ok)
		}
		if ok {
			if b, err := io.ReadAll(second); string(b) != c.body || err != nil {
				t.Errorf("second attempt read (%q, %v); want (%q, nil)", b, err, c.body)
			}
		}
	}
}

// The client's body is closed once, when the last attempt's transport is
// done with it and RoundTrip has returned, in either order; a superseded
// attempt's Close leaves it open.
func TestReplayCloses(t *testing.T) {
	src := &closeCounter{Reader: bytes.NewReader([]byte("x"))}
	r := newReplay(src, 10)
	first, _ := r.next()
	_ = first.Close() // a failed attempt's transport
	second, _ := r.next()
	if src.closed != 0 {
		t.Fatal("closed by a failed attempt's Close")
	}
	r.finish()
	if src.closed != 0 {
		t.Fatal("closed while the last attempt's transport still sends it")
	}
	_ = first.Close()
	_ = second.Close()
	_ = second.Close()
	if src.closed != 1 {
		t.Errorf("closed %d times; want once", src.closed)
	}

	src = &closeCounter{Reader: bytes.NewReader(nil)}
	r = newReplay(src, 10)
	only, _ := r.next()
	_ = only.Close()
	r.finish()
	if src.closed != 1 {
		t.Errorf("attempt closed, then finish: closed %d times; want once", src.closed)
	}

	src = &closeCounter{Reader: bytes.NewReader(nil)}
	newReplay(src, 10).finish()
	if src.closed != 1 {
		t.Errorf("no attempt made: closed %d times; want once", src.closed)
	}
}
