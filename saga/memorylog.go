package saga

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// MemoryLog is an in-process [Log], for tests and for sagas that need not
// survive the process. The zero value is ready to use; it is safe for
// concurrent use. It is a [Reopener].
//
// It keeps text (a transition's Error, a record's Trace) as [ValidText]
// returns it, as a database log may: a test in memory sees what
// production would.
type MemoryLog struct {
	mu    sync.Mutex
	sagas map[string]*memSaga
}

type memSaga struct {
	rec         Record
	transitions []Transition
	owner       string
	leaseUntil  time.Time
}

var (
	_ Log      = (*MemoryLog)(nil)
	_ Reopener = (*MemoryLog)(nil)
)

// Create implements [Log.Create].
func (l *MemoryLog) Create(ctx context.Context, rec Record, owner string, lease time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sagas == nil {
		l.sagas = map[string]*memSaga{}
	}
	if _, ok := l.sagas[rec.ID]; ok {
		return fmt.Errorf("%w: saga %q", ErrExists, rec.ID)
	}
	rec.Status = Running
	rec.Data = slices.Clone(rec.Data)
	rec.Trace = validTrace(rec.Trace)
	rec.CreatedAt = time.Now()
	l.sagas[rec.ID] = &memSaga{rec: rec, owner: owner, leaseUntil: time.Now().Add(lease)}
	return nil
}

// Append implements [Log.Append].
func (l *MemoryLog) Append(ctx context.Context, id, owner string, ts ...Transition) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.sagas[id]
	if !ok {
		return fmt.Errorf("%w: saga %q", ErrNotFound, id)
	}
	if s.owner == "" || s.owner != owner {
		return fmt.Errorf("%w: saga %q is not leased to %q", ErrLeaseLost, id, owner)
	}
	for i, t := range ts {
		taken := slices.ContainsFunc(s.transitions, func(old Transition) bool { return old.Seq == t.Seq }) ||
			slices.ContainsFunc(ts[:i], func(old Transition) bool { return old.Seq == t.Seq })
		if taken {
			return fmt.Errorf("%w: saga %q has a transition %d already", ErrLeaseLost, id, t.Seq)
		}
	}
	now := time.Now()
	for _, t := range ts {
		t.Data = slices.Clone(t.Data)
		t.Error = ValidText(t.Error)
		t.At = now
		s.transitions = append(s.transitions, t)
		if t.Status != "" {
			s.rec.Status = t.Status
			if t.Status.Final() {
				s.owner = ""
			}
		}
	}
	return nil
}

// Renew implements [Log.Renew].
func (l *MemoryLog) Renew(ctx context.Context, owner string, lease time.Duration, ids []string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var lost []string
	until := time.Now().Add(lease)
	for _, id := range ids {
		s, ok := l.sagas[id]
		if !ok || s.owner == "" || s.owner != owner {
			lost = append(lost, id)
			continue
		}
		s.leaseUntil = until
	}
	return lost, nil
}

// Claim implements [Log.Claim].
func (l *MemoryLog) Claim(ctx context.Context, owner string, names []string, lease time.Duration, limit int) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	var free []*memSaga
	for _, s := range l.sagas {
		if !s.rec.Status.Final() && slices.Contains(names, s.rec.Name) && (s.owner == "" || !now.Before(s.leaseUntil)) {
			free = append(free, s)
		}
	}
	slices.SortFunc(free, func(a, b *memSaga) int {
		if c := a.rec.CreatedAt.Compare(b.rec.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.rec.ID, b.rec.ID)
	})
	var out []Record
	for _, s := range free[:min(len(free), max(limit, 0))] {
		s.owner, s.leaseUntil = owner, now.Add(lease)
		out = append(out, s.rec.clone())
	}
	return out, nil
}

// Reopen implements [Reopener.Reopen].
func (l *MemoryLog) Reopen(ctx context.Context, id, owner string, lease time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.sagas[id]
	switch {
	case !ok:
		return fmt.Errorf("%w: saga %q", ErrNotFound, id)
	case s.rec.Status != NeedsAttention:
		return fmt.Errorf("%w: saga %q is %s, not %s", ErrLeaseLost, id, s.rec.Status, NeedsAttention)
	case s.owner != "" && s.owner != owner && time.Now().Before(s.leaseUntil):
		return fmt.Errorf("%w: saga %q is leased to %q", ErrLeaseLost, id, s.owner)
	}
	s.owner, s.leaseUntil = owner, time.Now().Add(lease)
	return nil
}

// Release implements [Log.Release].
func (l *MemoryLog) Release(ctx context.Context, id, owner string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.sagas[id]; ok && s.owner == owner {
		s.owner = ""
	}
	return nil
}

// Load implements [Log.Load].
func (l *MemoryLog) Load(ctx context.Context, id string) (Record, []Transition, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.sagas[id]
	if !ok {
		return Record{}, nil, fmt.Errorf("%w: saga %q", ErrNotFound, id)
	}
	ts := make([]Transition, len(s.transitions))
	for i, t := range s.transitions {
		t.Data = slices.Clone(t.Data)
		ts[i] = t
	}
	return s.rec.clone(), ts, nil
}

// validTrace returns a copy of trace with its keys and values through
// ValidText.
func validTrace(trace map[string]string) map[string]string {
	clean := true
	for k, v := range trace {
		clean = clean && ValidText(k) == k && ValidText(v) == v
	}
	if clean {
		return maps.Clone(trace)
	}
	out := make(map[string]string, len(trace))
	for k, v := range trace {
		out[ValidText(k)] = ValidText(v)
	}
	return out
}

func (r Record) clone() Record {
	r.Data = slices.Clone(r.Data)
	r.Trace = maps.Clone(r.Trace)
	return r
}
