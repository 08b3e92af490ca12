package pgcheckpoint

import (
	"go.opentelemetry.io/otel/attribute"

	"github.com/otelpatterns/patterns/internal/pgtel"
)

// AttrPosition is the attribute of a project span holding the global
// position of the event it handles.
const AttrPosition = attribute.Key("eventsource.position")

// AttrProjection is the attribute naming the projection of a project span
// and of the cqrs.projection.lag gauge.
const AttrProjection = attribute.Key("cqrs.projection")

// The store's operations, as recorded in db.operation.name.
type op int

const (
	opMigrate op = iota
	opLoad
	opSave
	opEnsure
	opLock
	opCommit
	opRebuild
	numOps
)

// ops are the store's operations, with the table they use as
// db.collection.name (schema-qualified).
var ops = [numOps]pgtel.Op{
	opMigrate: {Name: "migrate"},
	opLoad:    {Name: "load_checkpoint", Table: "checkpoints"},
	opSave:    {Name: "save_checkpoint", Table: "checkpoints"},
	opEnsure:  {Name: "ensure_checkpoint", Table: "checkpoints"},
	opLock:    {Name: "lock_checkpoint", Table: "checkpoints"},
	opCommit:  {Name: "commit"},
	opRebuild: {Name: "rebuild", Table: "checkpoints"},
}
