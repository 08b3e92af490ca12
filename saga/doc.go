// Package saga runs sagas: business transactions made of steps that each
// commit on their own, with compensations that undo completed steps when a
// later one fails. The [Orchestrator] runs inside the service, records
// every transition in a durable [Log] (saga/pglog keeps it in PostgreSQL),
// and resumes unfinished sagas after a crash with [Orchestrator.Recover].
package saga
