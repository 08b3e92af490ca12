// Package cqrs separates the commands that change a system from the queries
// that read it, and carries the events between them: typed command and
// query buses with middleware, an [EventBus] interface for publishing
// events to durable consumer groups, with an in-memory implementation here
// and NATS JetStream in cqrs/natsbus.
package cqrs
