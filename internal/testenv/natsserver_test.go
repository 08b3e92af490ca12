package testenv

import (
	"net"
	"strings"
	"testing"
	"time"
)

func TestNATSServerRestarts(t *testing.T) {
	s := StartNATSServer(t)
	addr := strings.TrimPrefix(s.URL(), "nats://")
	dial := func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err
	}
	if err := dial(); err != nil {
		t.Fatalf("after StartNATSServer: %v", err)
	}
	s.Kill()
	if dial() == nil {
		t.Fatal("a killed server accepted a connection")
	}
	s.Start()
	if err := dial(); err != nil {
		t.Fatalf("after Start: %v", err)
	}
	s.Stop()
	s.Stop() // a stopped server: nothing to do
	s.Start()
}
