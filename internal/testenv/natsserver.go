package testenv

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// NATSServerVar holds the path of a nats-server binary for the tests that
// start servers of their own ([StartNATSServer]); without it they look
// for nats-server on the PATH and in /usr/sbin.
const NATSServerVar = "PATTERNS_NATS_SERVER"

// NATSServer is a nats-server with JetStream that a test started for
// itself, on a free loopback port with a store directory of its own, so
// that it can kill and restart it. It is stopped when the test ends.
type NATSServer struct {
	t    testing.TB
	bin  string
	port int
	dir  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  bytes.Buffer  // the output of every run, for a failing test
}

// StartNATSServer starts a private nats-server with JetStream and waits
// until it accepts connections. It skips the test when no nats-server
// binary is found, or fails it under PATTERNS_REQUIRE_INTEGRATION=1.
func StartNATSServer(t testing.TB) *NATSServer {
	t.Helper()
	bin := os.Getenv(NATSServerVar)
	if bin == "" {
		if p, err := exec.LookPath("nats-server"); err == nil {
			bin = p
		} else if _, err := os.Stat("/usr/sbin/nats-server"); err == nil {
			bin = "/usr/sbin/nats-server"
		}
	}
	if bin == "" {
		msg := "this test starts a nats-server of its own: put nats-server on the PATH or set " + NATSServerVar
		if Required() {
			t.Fatal(msg + " (" + RequireVar + "=1 makes this a failure)")
		}
		t.Skip(msg)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: finding a free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &NATSServer{t: t, bin: bin, port: port, dir: t.TempDir()}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			s.mu.Lock()
			t.Logf("nats-server output:\n%s", s.log.String())
			s.mu.Unlock()
		}
	})
	s.Start()
	return s
}

// URL returns the server's client URL.
func (s *NATSServer) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

// Start starts the server again after [NATSServer.Kill] or
// [NATSServer.Stop], on the same port with the same store, and waits
// (up to 10s) until it accepts connections.
func (s *NATSServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatal("testenv: nats-server is running already")
	}
	cmd := exec.Command(s.bin, "-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-js", "-sd", s.dir)
	cmd.Stdout, cmd.Stderr = &lockedWriter{&s.mu, &s.log}, &lockedWriter{&s.mu, &s.log}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("testenv: starting %s: %v", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.port), time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		select {
		case <-done:
			s.t.Fatalf("testenv: nats-server exited at start: %v\n%s", cmd.ProcessState, s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("testenv: nats-server not accepting connections on port %d after 10s: %v", s.port, err)
		}
		s.mu.Unlock() // let its output be written
		time.Sleep(10 * time.Millisecond)
		s.mu.Lock()
	}
}

// Kill kills the server with SIGKILL, giving it no chance to flush or
// close anything, and waits until it has exited. It does nothing to a
// server that is not running.
func (s *NATSServer) Kill() { s.signal(syscall.SIGKILL) }

// Stop stops the server with SIGTERM, its orderly shutdown, and waits
// until it has exited (killing it after 10s).
func (s *NATSServer) Stop() { s.signal(syscall.SIGTERM) }

func (s *NATSServer) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	fmt.Fprintf(&s.log, "--- testenv: %v\n", sig)
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// lockedWriter writes to w under mu.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
