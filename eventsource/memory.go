package eventsource

import (
	"context"
	"iter"
	"sync"
	"time"

	"github.com/google/uuid"
)

// MemoryStore is an in-process [Store], for tests and for services whose
// events need not outlive the process. It keeps every event in memory.
//
// It records the command IDs of appends (see [WithCommandID]) for as
// long as it lives, and is a [CommandLog].
//
// The zero value is ready to use. A MemoryStore is safe for concurrent use.
type MemoryStore struct {
	mu      sync.Mutex
	events  []Event          // in position order; position = index + 1
	streams map[string][]int // indexes into events, in version order
	ids     map[uuid.UUID]int
	changed chan struct{} // closed and replaced on every append
	// commands holds the recorded (command ID, stream ID) pairs:
	// commands[commandID][streamID].
	commands map[string]map[string]struct{}
}

var _ CommandLog = (*MemoryStore)(nil)

func (m *MemoryStore) init() {
	if m.streams == nil {
		m.streams = make(map[string][]int)
		m.ids = make(map[uuid.UUID]int)
		m.commands = make(map[string]map[string]struct{})
		m.changed = make(chan struct{})
	}
}

// Append implements [Store.Append].
func (m *MemoryStore) Append(ctx context.Context, streamID string, expected ExpectedVersion, events ...NewEvent) ([]Event, error) {
	if err := checkAppend(streamID, expected, events); err != nil {
		return nil, err
	}
	command, hasCommand := CommandID(ctx)
	if hasCommand {
		if err := CheckCommandID(command); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	events = prepareAppend(ctx, events)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	if hasCommand {
		if _, dup := m.commands[command][streamID]; dup {
			return nil, &DuplicateCommandError{CommandID: command, StreamID: streamID}
		}
	}

	var fresh []NewEvent
	seen := make(map[uuid.UUID]bool, len(events))
	for _, e := range events {
		if i, stored := m.ids[e.ID]; stored && m.events[i].StreamID != streamID {
			return nil, &EventIDTakenError{ID: e.ID, StreamID: streamID, StoredIn: m.events[i].StreamID}
		}
	}
	for _, e := range events {
		if _, stored := m.ids[e.ID]; !stored && !seen[e.ID] {
			fresh = append(fresh, e)
			seen[e.ID] = true
		}
	}
	if len(fresh) == 0 { // a retried append: hand back what is stored
		out := make([]Event, len(events))
		for i, e := range events {
			out[i] = m.events[m.ids[e.ID]].clone()
		}
		if hasCommand {
			m.recordCommand(command, streamID)
		}
		return out, nil
	}
	version := int64(len(m.streams[streamID]))
	if expected != Any && int64(expected) != version {
		return nil, &ConflictError{StreamID: streamID, Expected: expected, Actual: version}
	}
	now := time.Now().UTC()
	out := make([]Event, 0, len(fresh))
	for _, e := range fresh {
		version++
		ev := Event{
			ID: e.ID, StreamID: streamID, Version: version, Position: int64(len(m.events) + 1),
			Type: e.Type, Data: append([]byte(nil), e.Data...), Metadata: copyMap(e.Metadata), RecordedAt: now,
		}
		m.ids[e.ID] = len(m.events)
		m.streams[streamID] = append(m.streams[streamID], len(m.events))
		m.events = append(m.events, ev)
		out = append(out, ev.clone())
	}
	if hasCommand {
		m.recordCommand(command, streamID)
	}
	close(m.changed)
	m.changed = make(chan struct{})
	return out, nil
}

func (m *MemoryStore) recordCommand(command, streamID string) {
	streams := m.commands[command]
	if streams == nil {
		streams = make(map[string]struct{}, 1)
		m.commands[command] = streams
	}
	streams[streamID] = struct{}{}
}

// CommandRecorded implements [CommandLog.CommandRecorded].
func (m *MemoryStore) CommandRecorded(ctx context.Context, commandID string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.commands[commandID]) > 0, nil
}

// CommandRecordedIn implements [CommandLog.CommandRecordedIn].
func (m *MemoryStore) CommandRecordedIn(ctx context.Context, commandID, streamID string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.commands[commandID][streamID]
	return ok, nil
}

// ReadStream implements [Store.ReadStream].
func (m *MemoryStore) ReadStream(ctx context.Context, streamID string, fromVersion int64) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		for i := max(fromVersion, 1) - 1; ; i++ {
			if err := ctx.Err(); err != nil {
				yield(Event{}, err)
				return
			}
			m.mu.Lock()
			idx := m.streams[streamID]
			if i >= int64(len(idx)) {
				m.mu.Unlock()
				return
			}
			e := m.events[idx[i]].clone()
			m.mu.Unlock()
			if !yield(e, nil) {
				return
			}
		}
	}
}

// ReadAll implements [Store.ReadAll].
func (m *MemoryStore) ReadAll(ctx context.Context, afterPosition int64) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		stopped := false
		_, more := m.readAll(ctx, afterPosition, func(e Event, err error) bool {
			stopped = !yield(e, err)
			return !stopped
		})
		if more || stopped {
			return
		}
		yield(Event{}, ctx.Err())
	}
}

// readAll yields events after pos that exist now; it returns the last
// position yielded and whether to go on (false when the consumer stopped
// or ctx is done).
func (m *MemoryStore) readAll(ctx context.Context, pos int64, yield func(Event, error) bool) (int64, bool) {
	for i := max(pos, 0); ; i++ {
		if err := ctx.Err(); err != nil {
			return pos, false
		}
		m.mu.Lock()
		if i >= int64(len(m.events)) {
			m.mu.Unlock()
			return pos, true
		}
		e := m.events[i].clone()
		m.mu.Unlock()
		if !yield(e, nil) {
			return pos, false
		}
		pos = e.Position
	}
}

// Subscribe implements [Store.Subscribe].
func (m *MemoryStore) Subscribe(ctx context.Context, afterPosition int64) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		pos := afterPosition
		for {
			m.mu.Lock()
			m.init()
			changed := m.changed
			m.mu.Unlock()
			var more bool
			if pos, more = m.readAll(ctx, pos, yield); !more {
				return
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	}
}

// clone copies the event's data and metadata, so that callers cannot
// change what the store keeps.
func (e Event) clone() Event {
	e.Data = append([]byte(nil), e.Data...)
	e.Metadata = copyMap(e.Metadata)
	return e
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
