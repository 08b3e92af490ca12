package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// phases is a slog handler that prints the app's lifecycle log as short
// lines: the message and the attributes that do not vary from run to run
// (not how long a step took).
type phases struct {
	mu  sync.Mutex
	out io.Writer
}

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
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := io.WriteString(p.out, b.String())
	return err
}

func (p *phases) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *phases) WithGroup(string) slog.Handler      { return p }
