// Package buskit holds what an implementation of [cqrs.EventBus] calls so
// that it behaves as the buses of this module do: the resolution and
// checking of the subscription options ([NewSubscribeConfig]) and the
// trace context a message carries in its metadata ([CreationContext],
// [InjectTrace], [ExtractTrace]). Users of buses do not need it.
//
// [cqrs.MemoryBus] and [github.com/otelpatterns/patterns/cqrs/natsbus] use
// the same helpers, and every bus passes the conformance tests of
// [github.com/otelpatterns/patterns/cqrs/bustest].
//
// # Subscribe
//
// A Subscribe of a bus written with it starts like this:
//
//	func (b *Bus) Subscribe(ctx context.Context, topic, group string,
//		h cqrs.Handler, opts ...cqrs.SubscribeOption) (cqrs.Subscription, error) {
//		cfg, err := buskit.NewSubscribeConfig(opts...)
//		if err != nil {
//			return nil, fmt.Errorf("mybus: %w", err) // names every bad option
//		}
//		// Deliver each message up to cfg.MaxDeliver times, waiting
//		// cfg.Backoff(n) after failed delivery n, then hand it to
//		// cfg.DeadLetter; run cfg.Concurrency handlers at once.
//	}
//
// # Trace context
//
// A message's creation context is the trace context that consumers
// continue and link to. Publish keeps the one a message carries of its
// own (an event the [cqrs.Relay] publishes carries that of its append)
// and links its span to it; to any other message it adds the context of
// its publish span. The span that processes a delivery is a child of the
// creation context, and links to it:
//
//	// Publish: the span links to the contexts the messages carry,
//	for _, m := range msgs {
//		if sc := buskit.CreationContext(m); sc.IsValid() {
//			links = append(links, trace.Link{SpanContext: sc})
//		}
//	}
//	ctx, span := tracer.Start(ctx, "publish "+topic, trace.WithLinks(links...))
//	// and the others get the span's context.
//	for i, m := range msgs {
//		if !buskit.CreationContext(m).IsValid() {
//			msgs[i].Metadata = buskit.InjectTrace(ctx, m.Metadata)
//		}
//	}
//
//	// Delivery:
//	pctx := buskit.ExtractTrace(base, m)
//	ctx, span := tracer.Start(pctx, "process "+topic,
//		trace.WithSpanKind(trace.SpanKindConsumer),
//		trace.WithLinks(trace.LinkFromContext(pctx)))
package buskit
