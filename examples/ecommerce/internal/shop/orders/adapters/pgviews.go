package adapters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/domain"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/ports"
)

// PostgresViews is the read model in a PostgreSQL table, shared by every
// instance of the order service and kept across restarts. It is safe for
// concurrent use.
type PostgresViews struct {
	pool   *pgxpool.Pool
	schema string // quoted
	table  string // quoted, schema-qualified
}

// NewPostgresViews returns the read model in table order_views of schema
// ("" is "public"); Migrate creates it.
func NewPostgresViews(pool *pgxpool.Pool, schema string) *PostgresViews {
	if schema == "" {
		schema = "public"
	}
	return &PostgresViews{pool: pool, schema: pgx.Identifier{schema}.Sanitize(), table: pgx.Identifier{schema, "order_views"}.Sanitize()}
}

// Migrate creates the schema and the table if they do not exist.
func (p *PostgresViews) Migrate(ctx context.Context) error {
	if _, err := p.pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+p.schema); err != nil {
		return err
	}
	_, err := p.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+p.table+` (
		order_id text PRIMARY KEY,
		customer_id text NOT NULL DEFAULT '',
		status text NOT NULL,
		rank int NOT NULL,
		lines jsonb,
		total_cents bigint NOT NULL DEFAULT 0,
		reason text NOT NULL DEFAULT '',
		updated_at timestamptz NOT NULL)`)
	return err
}

// Get returns the view of order id.
func (p *PostgresViews) Get(ctx context.Context, id domain.OrderID) (ports.OrderView, error) {
	v := ports.OrderView{OrderID: string(id)}
	var lines []byte
	var status string
	err := p.pool.QueryRow(ctx, `SELECT customer_id, status, coalesce(lines, '[]'), total_cents, reason, updated_at
		FROM `+p.table+` WHERE order_id = $1 AND customer_id <> ''`, string(id)).
		Scan(&v.CustomerID, &status, &lines, &v.TotalCents, &v.Reason, &v.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, domain.NotFound(fmt.Sprintf("no order %s", id))
	}
	if err != nil {
		return v, err
	}
	v.Status = domain.Status(status)
	v.UpdatedAt = v.UpdatedAt.UTC()
	return v, json.Unmarshal(lines, &v.Lines)
}

// Apply folds event into its order's view in one statement, with the
// merge rule of MemoryViews: a status of a lower rank is stale.
func (p *PostgresViews) Apply(ctx context.Context, event any, at time.Time) error {
	d, err := deltaOf(event)
	if err != nil {
		return err
	}
	var v ports.OrderView
	d.merge(&v, at)
	var lines []byte // NULL unless the event sets the lines
	if d.lines != nil {
		if lines, err = json.Marshal(v.Lines); err != nil {
			return err
		}
	}
	_, err = p.pool.Exec(ctx, `INSERT INTO `+p.table+` AS t
		(order_id, customer_id, status, rank, lines, total_cents, reason, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (order_id) DO UPDATE SET
		customer_id = CASE WHEN excluded.customer_id <> '' THEN excluded.customer_id ELSE t.customer_id END,
		lines = coalesce(excluded.lines, t.lines),
		total_cents = CASE WHEN excluded.lines IS NOT NULL THEN excluded.total_cents ELSE t.total_cents END,
		status = CASE WHEN excluded.rank >= t.rank THEN excluded.status ELSE t.status END,
		rank = greatest(excluded.rank, t.rank),
		reason = CASE WHEN excluded.reason <> '' AND excluded.rank >= t.rank THEN excluded.reason ELSE t.reason END,
		updated_at = greatest(excluded.updated_at, t.updated_at)`,
		string(d.id), v.CustomerID, string(v.Status), v.Status.Rank(), lines, v.TotalCents, v.Reason, v.UpdatedAt)
	return err
}
