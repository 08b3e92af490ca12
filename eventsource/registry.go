package eventsource

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sync"

	"github.com/otelpatterns/patterns/internal/brief"
)

// Registry maps event type names to Go types, encodes domain events into
// new events ([NewEvent]) and decodes stored ones ([Event]) back, with a
// [Codec] (JSON by default), upcasting old event versions on the way.
// Names are part of the stored data: choose them once
// ("account.opened.v1") and never reuse one for another shape.
//
// Register types at start-up; a Registry is then safe for concurrent use.
type Registry struct {
	codec     Codec
	mu        sync.RWMutex
	byName    map[string]reflect.Type
	byType    map[reflect.Type]string
	upcasters map[string]func(Event) (Event, error)
}

// Codec encodes event data. Implementations are safe for concurrent use.
type Codec interface {
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a pointer to a registered type.
	Unmarshal(data []byte, v any) error
}

// JSON is the default [Codec]: encoding/json.
type JSON struct{}

// Marshal encodes v as JSON.
func (JSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON into v.
func (JSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// RegistryOption configures a [Registry].
type RegistryOption interface{ applyRegistry(*Registry) }

type registryOptionFunc func(*Registry)

func (f registryOptionFunc) applyRegistry(r *Registry) { f(r) }

// WithCodec sets how event data is encoded. The default is [JSON]; a nil
// codec keeps it.
func WithCodec(c Codec) RegistryOption {
	return registryOptionFunc(func(r *Registry) {
		if c != nil {
			r.codec = c
		}
	})
}

// NewRegistry returns an empty registry that encodes with encoding/json
// unless [WithCodec] says otherwise. Like [Register], it panics on a
// programming error: a nil option.
func NewRegistry(opts ...RegistryOption) *Registry {
	r := &Registry{
		codec:     JSON{},
		byName:    map[string]reflect.Type{},
		byType:    map[reflect.Type]string{},
		upcasters: map[string]func(Event) (Event, error){},
	}
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("eventsource: NewRegistry: opts[%d] is nil", i))
		}
		o.applyRegistry(r)
	}
	return r
}

// Register maps name to the Go type E (a value type, usually a struct),
// so that r encodes values of E as events of type name and decodes those
// events back into values of E.
//
// Registrations are written in code, so a mistake in one is a programming
// error, and Register panics with a message that names it: a nil r; an
// interface, function or channel type E, which no event can be decoded
// into; a name that is empty, not valid UTF-8 or holds a NUL byte (stores
// keep only text); a name or a type registered already, or a name that
// has an upcaster ([Registry.Upcast]).
func Register[E any](r *Registry, name string) {
	t := reflect.TypeFor[E]()
	if r == nil {
		panic(fmt.Sprintf("eventsource: Register[%v](%q): registry is nil", t, name))
	}
	switch t.Kind() {
	case reflect.Interface, reflect.Func, reflect.Chan, reflect.UnsafePointer:
		panic(fmt.Sprintf("eventsource: Register[%v](%q): type is a %v; events are values of a concrete data type", t, name, t.Kind()))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case name == "":
		panic(fmt.Sprintf("eventsource: Register[%v]: empty name", t))
	case checkText(name) != nil:
		panic(fmt.Sprintf("eventsource: Register[%v](%q): name %v", t, name, checkText(name)))
	case r.byName[name] != nil:
		panic(fmt.Sprintf("eventsource: Register[%v](%q): name already registered for %v", t, name, r.byName[name]))
	case r.byType[t] != "":
		panic(fmt.Sprintf("eventsource: Register[%v](%q): type already registered as %q", t, name, r.byType[t]))
	case r.upcasters[name] != nil:
		panic(fmt.Sprintf("eventsource: Register[%v](%q): name has an upcaster; it names an old version", t, name))
	}
	r.byName[name] = t
	r.byType[t] = name
}

// Upcast registers f to turn stored events of the old type name from into
// a newer shape, on read: f returns the event with its new Type and Data
// (and may change Metadata). The result is upcast again if its type has an
// upcaster too, so versions chain (v1 → v2 → v3). Like [Register], it
// panics on a programming error: a nil r or f, an empty from, or a from
// that has an upcaster already or is a registered type.
func (r *Registry) Upcast(from string, f func(Event) (Event, error)) {
	if r == nil {
		panic(fmt.Sprintf("eventsource: Upcast(%q): registry is nil", from))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case from == "":
		panic("eventsource: Upcast: empty name")
	case f == nil:
		panic(fmt.Sprintf("eventsource: Upcast(%q): nil function", from))
	case r.upcasters[from] != nil:
		panic(fmt.Sprintf("eventsource: Upcast(%q): already has an upcaster", from))
	case r.byName[from] != nil:
		panic(fmt.Sprintf("eventsource: Upcast(%q): the name is registered to %v", from, r.byName[from]))
	}
	r.upcasters[from] = f
}

// maxUpcasts bounds an upcaster chain, against a cycle.
const maxUpcasts = 32

// Encode turns a domain event (of a registered type) into a [NewEvent]
// with the given metadata; the store gives it an ID when it is appended.
// An event of a type that is not registered gives an error matching
// [ErrUnknownEventType]; a nil event or registry, one matching
// [ErrInvalidArgument].
func (r *Registry) Encode(event any, metadata map[string]string) (NewEvent, error) {
	switch {
	case r == nil:
		return NewEvent{}, invalid("Encode: registry is nil")
	case event == nil:
		return NewEvent{}, invalid("Encode: event is nil")
	}
	t := reflect.TypeOf(event)
	r.mu.RLock()
	name := r.byType[t]
	r.mu.RUnlock()
	if name == "" {
		return NewEvent{}, fmt.Errorf("%w: %v is not registered", ErrUnknownEventType, t)
	}
	data, err := r.codec.Marshal(event)
	if err != nil {
		return NewEvent{}, fmt.Errorf("eventsource: encoding %s: %w", name, err)
	}
	return NewEvent{Type: name, Data: data, Metadata: metadata}, nil
}

// Decode turns a stored event into its domain event (a value of the
// registered type), upcasting old versions first. An event whose type is
// neither registered nor upcast gives an error matching
// [ErrUnknownEventType] that names the type; data that does not decode
// gives an error naming the event. A nil registry gives an error matching
// [ErrInvalidArgument].
func (r *Registry) Decode(e Event) (any, error) {
	if r == nil {
		return nil, invalid("Decode: registry is nil")
	}
	for range maxUpcasts {
		r.mu.RLock()
		t := r.byName[e.Type]
		up := r.upcasters[e.Type]
		r.mu.RUnlock()
		switch {
		case t != nil:
			v := reflect.New(t)
			if err := r.codec.Unmarshal(e.Data, v.Interface()); err != nil {
				return nil, fmt.Errorf("eventsource: decoding %s event %s (stream %s, version %d): %w", brief.String(e.Type), e.ID, brief.Quote(e.StreamID), e.Version, err)
			}
			return v.Elem().Interface(), nil
		case up != nil:
			next, err := up(e)
			if err != nil {
				return nil, fmt.Errorf("eventsource: upcasting %s event %s (stream %s, version %d): %w", brief.String(e.Type), e.ID, brief.Quote(e.StreamID), e.Version, err)
			}
			e = next
		default:
			return nil, fmt.Errorf("%w %s (event %s, stream %s, version %d)", ErrUnknownEventType, brief.Quote(e.Type), e.ID, brief.Quote(e.StreamID), e.Version)
		}
	}
	return nil, fmt.Errorf("eventsource: upcasting %s event %s (stream %s, version %d): more than %d steps; is there a cycle?", brief.String(e.Type), e.ID, brief.Quote(e.StreamID), e.Version, maxUpcasts)
}
