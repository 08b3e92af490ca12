package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// readyMessage is what the app logs once every component has started and
// readiness is true.
const readyMessage = "hexagonal: started; ready"

// phases is a slog handler that prints the app's lifecycle log as short
// lines: the message and the attributes that do not vary from run to run
// (not how long a step took). It closes ready once the app logged that it
// is ready, so that the scenario starts after that line.
type phases struct {
	out   io.Writer
	ready chan struct{}
	once  sync.Once
}

func newPhases(out io.Writer) *phases { return &phases{out: out, ready: make(chan struct{})} }

func (p *phases) Enabled(context.Context, slog.Level) bool { return true }

func (p *phases) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString("  [app] ")
	b.WriteString(strings.TrimPrefix(r.Message, "hexagonal: "))
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "took" {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		}
		return true
	})
	b.WriteByte('\n')
	_, err := io.WriteString(p.out, b.String())
	if r.Message == readyMessage {
		p.once.Do(func() { close(p.ready) })
	}
	return err
}

// lockedWriter serializes the writes of the goroutines that print: the
// app's, the customer's, the server's handlers'.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (p *phases) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *phases) WithGroup(string) slog.Handler      { return p }
