package faultproxy_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/otelpatterns/patterns/internal/faultproxy"
)

func TestMain(m *testing.M) {
	// Connections the server accepted may outlive a test by the time the
	// proxy takes to close them.
	goleak.VerifyTestMain(m)
}

// echo starts a line echo server, closed when the test ends.
func echo(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return l.Addr().String()
}

// roundTrip sends a line through addr and reads it back within timeout.
func roundTrip(t *testing.T, c net.Conn, timeout time.Duration) error {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err == nil && line != "ping\n" {
		t.Fatalf("read %q; want ping", line)
	}
	return err
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestFaults(t *testing.T) {
	p := faultproxy.New(t, echo(t))
	c := dial(t, p.Addr())
	if err := roundTrip(t, c, time.Second); err != nil {
		t.Fatalf("through a healthy proxy: %v", err)
	}

	lat := p.Latency(faultproxy.Downstream, 200*time.Millisecond)
	start := time.Now()
	if err := roundTrip(t, c, 2*time.Second); err != nil {
		t.Fatalf("with latency: %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("round trip with 200ms latency took %v", d)
	}
	lat.Remove()

	hole := p.Blackhole(faultproxy.Downstream)
	if err := roundTrip(t, c, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("through a blackhole: %v; want a timeout", err)
	}
	hole.Remove()

	p.Cut()
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("a cut proxy accepted a connection")
	}
	p.Restore()
	if err := roundTrip(t, dial(t, p.Addr()), time.Second); err != nil {
		t.Fatalf("after Restore: %v", err)
	}

	p.ResetPeer(faultproxy.Upstream, 0)
	if err := roundTrip(t, dial(t, p.Addr()), time.Second); err == nil {
		t.Fatal("a reset connection answered")
	}
}

func TestURL(t *testing.T) {
	p := faultproxy.New(t, echo(t))
	got := p.URL("postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	want := "postgres://postgres@" + p.Addr() + "/test?sslmode=disable"
	if got != want {
		t.Errorf("URL() = %q; want %q", got, want)
	}
	if p.Host() != "127.0.0.1" || p.Port() == 0 {
		t.Errorf("Host(), Port() = %q, %d", p.Host(), p.Port())
	}
}
