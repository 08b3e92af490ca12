package saga_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/otelpatterns/patterns/saga"
)

// errDown is the error of a faultLog that is down.
var errDown = errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")

// faultLog is a Log that fails calls on demand, as a database log does
// when the database is out of reach or refuses what it is given.
type faultLog struct {
	saga.Log
	// down fails every call, as with the database out of reach.
	down atomic.Bool
	// failLoads fails the next n calls of Load.
	failLoads atomic.Int32
	// blockLoads makes Load wait for its context to end, as a load from a
	// database that stopped answering does.
	blockLoads atomic.Bool
	// strict refuses text that PostgreSQL's text columns refuse: NUL
	// bytes and invalid UTF-8, in an Error or a Trace.
	strict bool
	// afterCreate, if set, is called after a Create that succeeded.
	afterCreate func()
	// beforeClaim, if set, is called before each Claim; claims counts
	// the calls of Claim.
	beforeClaim func()
	claims      atomic.Int32
	// afterReopen, if set, is called after a Reopen that succeeded.
	afterReopen func()
	// onAppend, if set, is called with each Append's transitions and the
	// rest of the call (down included): it may fail the call, before or
	// after it.
	onAppend func(ts []saga.Transition, next func() error) error
}

func (l *faultLog) fail(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.down.Load() {
		return errDown
	}
	return nil
}

// refuse returns the error of PostgreSQL for text s, if it refuses it.
func (l *faultLog) refuse(s string) error {
	if l.strict && (!utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0) {
		return fmt.Errorf("ERROR: invalid byte sequence for encoding \"UTF8\" (SQLSTATE 22021) in %q", s)
	}
	return nil
}

func (l *faultLog) Create(ctx context.Context, rec saga.Record, owner string, lease time.Duration) error {
	if err := l.fail(ctx); err != nil {
		return err
	}
	for k, v := range rec.Trace {
		if err := errors.Join(l.refuse(k), l.refuse(v)); err != nil {
			return err
		}
	}
	err := l.Log.Create(ctx, rec, owner, lease)
	if err == nil && l.afterCreate != nil {
		l.afterCreate()
	}
	return err
}

func (l *faultLog) Append(ctx context.Context, id, owner string, ts ...saga.Transition) error {
	if l.onAppend != nil {
		return l.onAppend(ts, func() error { return l.append(ctx, id, owner, ts...) })
	}
	return l.append(ctx, id, owner, ts...)
}

func (l *faultLog) append(ctx context.Context, id, owner string, ts ...saga.Transition) error {
	if err := l.fail(ctx); err != nil {
		return err
	}
	for _, t := range ts {
		if err := l.refuse(t.Error); err != nil {
			return err
		}
	}
	return l.Log.Append(ctx, id, owner, ts...)
}

func (l *faultLog) Renew(ctx context.Context, owner string, lease time.Duration, ids []string) ([]string, error) {
	if err := l.fail(ctx); err != nil {
		return nil, err
	}
	return l.Log.Renew(ctx, owner, lease, ids)
}

func (l *faultLog) Claim(ctx context.Context, owner string, names []string, lease time.Duration, limit int) ([]saga.Record, error) {
	l.claims.Add(1)
	if l.beforeClaim != nil {
		l.beforeClaim()
	}
	if err := l.fail(ctx); err != nil {
		return nil, err
	}
	return l.Log.Claim(ctx, owner, names, lease, limit)
}

func (l *faultLog) Release(ctx context.Context, id, owner string) error {
	if err := l.fail(ctx); err != nil {
		return err
	}
	return l.Log.Release(ctx, id, owner)
}

func (l *faultLog) Load(ctx context.Context, id string) (saga.Record, []saga.Transition, error) {
	if l.blockLoads.Load() {
		<-ctx.Done()
		return saga.Record{}, nil, fmt.Errorf("loading saga %q: %w", id, ctx.Err())
	}
	if err := l.fail(ctx); err != nil {
		return saga.Record{}, nil, err
	}
	if l.failLoads.Add(-1) >= 0 {
		return saga.Record{}, nil, errors.New("connection reset by peer")
	}
	return l.Log.Load(ctx, id)
}

func (l *faultLog) Reopen(ctx context.Context, id, owner string, lease time.Duration) error {
	if err := l.fail(ctx); err != nil {
		return err
	}
	err := l.Log.(saga.Reopener).Reopen(ctx, id, owner, lease)
	if err == nil && l.afterReopen != nil {
		l.afterReopen()
	}
	return err
}
