package cqrs

import (
	"context"
	"errors"
	"fmt"

	"github.com/otelpatterns/patterns/eventsource"
)

// Relay publishes the events of an event store to an [EventBus], in the
// store's global order, from a stored checkpoint: the transactional
// outbox pattern with the event store as the outbox. An event is published
// only once it is committed, and every committed event is published, at
// least once: a relay that stops between publishing and saving its
// checkpoint publishes the last events again when it resumes, with the
// same message IDs (the event IDs), which JetStream de-duplicates and
// handlers must tolerate.
//
// Each message carries the trace context recorded with its event, the
// context of its append, as its creation context, and is published in
// it: the bus's publish span continues the trace of the request that
// appended the event and links to the append, and so do the spans that
// process the message (see [CreationContext]).
type Relay struct {
	name        string
	store       eventsource.Store
	bus         EventBus
	checkpoints CheckpointStore
	topic       func(eventsource.Event) string
}

// NewRelay returns a relay called name (its checkpoint's name) that
// publishes each event to the topic that topic returns for it. It returns
// an error naming every nil argument.
func NewRelay(name string, store eventsource.Store, bus EventBus, checkpoints CheckpointStore, topic func(eventsource.Event) string) (*Relay, error) {
	var errs []error
	if name == "" {
		errs = append(errs, errors.New("empty name"))
	}
	if store == nil {
		errs = append(errs, errors.New("nil store"))
	}
	if bus == nil {
		errs = append(errs, errors.New("nil bus"))
	}
	if checkpoints == nil {
		errs = append(errs, errors.New("nil checkpoint store"))
	}
	if topic == nil {
		errs = append(errs, errors.New("nil topic function"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cqrs: NewRelay: %w", err)
	}
	return &Relay{name: name, store: store, bus: bus, checkpoints: checkpoints, topic: topic}, nil
}

// Run publishes events until ctx is done, then returns nil; it returns an
// error if the store, the bus or the checkpoint store fails (run it again
// to resume). It saves the checkpoint after every published event.
func (r *Relay) Run(ctx context.Context) error {
	pos, err := r.checkpoints.LoadCheckpoint(ctx, r.name)
	if err != nil {
		return fmt.Errorf("cqrs: relay %q: loading the checkpoint: %w", r.name, err)
	}
	for e, err := range r.store.Subscribe(ctx, pos) {
		if err != nil {
			return fmt.Errorf("cqrs: relay %q: reading events after %d: %w", r.name, pos, err)
		}
		msg := Message{ID: e.ID.String(), Topic: r.topic(e), Type: e.Type, Data: e.Data, Metadata: e.Metadata}
		// Publish in the context of the append, so the trace continues.
		pctx := eventsource.TraceContext(ctx, e)
		if err := r.bus.Publish(pctx, msg.Topic, msg); err != nil {
			return fmt.Errorf("cqrs: relay %q: publishing event %d: %w", r.name, e.Position, err)
		}
		if err := r.checkpoints.SaveCheckpoint(ctx, r.name, e.Position); err != nil {
			return fmt.Errorf("cqrs: relay %q: saving the checkpoint %d: %w", r.name, e.Position, err)
		}
		pos = e.Position
	}
	return nil
}
