package pgcdc

import (
	"context"
	"fmt"
	"time"
)

// Handler handles the changes of one committed transaction. The consumer
// calls it with one transaction at a time, in commit order, and confirms
// the transaction to the server only once it returns nil; an error makes
// the consumer call it again with the same transaction after a backoff.
// A transaction may also be delivered again after a crash or a lost
// connection (at-least-once): handlers must be idempotent, for example
// by keying what they write by [Transaction.CommitLSN] and the change's
// index. ctx ends when [Consumer.Run]'s context does. A handler must not
// modify the transaction's changes: an attempt after a failure gets the
// same maps, and would see what the failed attempt did to them.
type Handler func(ctx context.Context, tx Transaction) error

// Transaction is a committed transaction's changes to the consumer's
// tables, in the order the transaction made them.
type Transaction struct {
	// XID is the transaction's id on the server.
	XID uint32
	// CommitLSN is the position of the transaction's commit record in
	// the write-ahead log: it grows with commit order and identifies the
	// transaction on the server (transaction ids wrap around).
	CommitLSN LSN
	// EndLSN is the position just past the commit record, which the
	// consumer confirms to the server once the handler succeeded.
	EndLSN LSN
	// CommitTime is when the transaction committed, by the server's clock.
	CommitTime time.Time
	// Origin is the replication origin of the session that made the
	// transaction (pg_replication_origin_session_setup), "" for none. A
	// writer that copies changes the other way (new system to legacy,
	// in a strangler migration) can mark its sessions with an origin,
	// so that the handler skips its writes instead of sending them back.
	Origin string
	// Changes are the transaction's changes to the consumer's tables;
	// never empty.
	Changes []Change
}

// Op is the kind of a change.
type Op string

// The kinds of changes.
const (
	OpInsert   Op = "insert"
	OpUpdate   Op = "update"
	OpDelete   Op = "delete"
	OpTruncate Op = "truncate"
)

// Change is one row changed (or one table truncated) by a transaction.
//
// Column values are decoded from PostgreSQL's text format into the Go
// types pgx gives them (int32, int64, string, bool, float64,
// time.Time, pgtype.Numeric, [16]byte for uuid...), with these
// exceptions:
//
//   - json and jsonb are what encoding/json makes of them in an any
//     (map[string]any, []any, string, bool, nil), but numbers are
//     [encoding/json.Number], which keeps every digit: a float64 would
//     turn the integers beyond 2^53 into others (an id, an amount in
//     cents). Its Int64 and Float64 methods read it, and json.Marshal
//     writes it back as it was.
//   - "char" is a string of its one character ("" for the zero byte);
//     a byte of 128 or more, which is no character of UTF-8, is the
//     escape PostgreSQL writes for it: \ooo in octal, \200 for 128.
//   - an array is a []any of its elements, and one of several
//     dimensions a []any of []any..., nested as its dimensions are:
//     '{{1,2},{3,4}}' is []any{[]any{1, 2}, []any{3, 4}}. An array
//     whose indexes do not start at 1 ('[0:1]={1,2}', rare) is its
//     text, as a slice would lose its bounds.
//
// A NULL is nil. A value of a type pgx does not know (an enum, a domain,
// a type of an extension) is its text, and so is a value pgx fails to
// decode (a json document nested deeper than encoding/json reads, for
// one): the server sends the same value on every connection, so the
// consumer delivers it as it can, and never stops on it.
type Change struct {
	// Table is the schema-qualified table: "public.orders".
	Table string
	// Op is what happened to the row.
	Op Op
	// New is the row after an insert or an update, by column name; nil
	// for a delete or a truncate. A TOASTed column that an update did
	// not change is left out and named in Unchanged.
	New map[string]any
	// Old is the row before an update or a delete. Under the default
	// REPLICA IDENTITY it holds the primary key's columns alone, and an
	// update carries it only when the server sends it: when the update
	// changed the key, or when a key column holds a value stored out of
	// line (TOASTed); under REPLICA IDENTITY FULL it is the whole old
	// row. Nil when absent.
	Old map[string]any
	// Key is the replica identity of the row (its primary key, by
	// default): the key columns of Old when it is present, of New
	// otherwise. Under REPLICA IDENTITY FULL every column is part of the
	// identity. Nil for a truncate.
	Key map[string]any
	// Unchanged names the columns of New left out because an update did
	// not change their TOASTed values, which logical replication does
	// not send again.
	Unchanged []string
}

// LSN is a position in PostgreSQL's write-ahead log.
type LSN uint64

// String formats lsn as PostgreSQL does: two hexadecimal halves, "16/B374D848".
func (lsn LSN) String() string {
	return fmt.Sprintf("%X/%X", uint32(lsn>>32), uint32(lsn))
}
