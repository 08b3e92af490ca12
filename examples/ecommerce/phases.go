package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// phases is a slog handler for the App's log that passes every record on
// to next (the services' log) and keeps, for the story, the order in
// which the components stopped and the App's errors.
type phases struct {
	next  slog.Handler
	state *phaseState
}

type phaseState struct {
	mu      sync.Mutex
	stopped []string // components, in the order they stopped
	errors  []string // the App's error records
}

func newPhases(next slog.Handler) *phases { return &phases{next: next, state: &phaseState{}} }

func (p *phases) Enabled(ctx context.Context, l slog.Level) bool {
	return true
}

func (p *phases) Handle(ctx context.Context, r slog.Record) error {
	p.state.mu.Lock()
	switch {
	case r.Message == "hexagonal: component stopped":
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "component" {
				p.state.stopped = append(p.state.stopped, a.Value.String())
			}
			return true
		})
	case r.Level >= slog.LevelError:
		var b strings.Builder
		b.WriteString(strings.TrimPrefix(r.Message, "hexagonal: "))
		r.Attrs(func(a slog.Attr) bool {
			b.WriteString(" " + a.String())
			return true
		})
		p.state.errors = append(p.state.errors, b.String())
	}
	p.state.mu.Unlock()
	if p.next.Enabled(ctx, r.Level) {
		return p.next.Handle(ctx, r)
	}
	return nil
}

func (p *phases) WithAttrs(as []slog.Attr) slog.Handler {
	return &phases{next: p.next.WithAttrs(as), state: p.state}
}

func (p *phases) WithGroup(name string) slog.Handler {
	return &phases{next: p.next.WithGroup(name), state: p.state}
}

// stoppedOrder returns the components in the order they stopped, and the
// App's error records.
func (p *phases) stoppedOrder() (stopped, errs []string) {
	p.state.mu.Lock()
	defer p.state.mu.Unlock()
	return append([]string(nil), p.state.stopped...), append([]string(nil), p.state.errors...)
}
