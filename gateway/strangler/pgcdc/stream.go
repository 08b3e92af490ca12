package pgcdc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// SQLSTATEs the consumer tells apart.
const (
	codeDuplicateObject = "42710"
	codeUniqueViolation = "23505"
	codeObjectInUse     = "55006"
)

// slotPoll is how often the consumer looks again at a slot that another
// consumer is creating, until it has a position.
const slotPoll = 200 * time.Millisecond

// closeTimeout bounds the goodbye to a server of a connection the
// consumer is done with, which a dead connection would not answer.
const closeTimeout = 5 * time.Second

// silentIntervals is how many status intervals without a message from
// the server make the consumer take a connection for dead.
const silentIntervals = 3

// query runs sql, made of names the consumer checked, on a replication
// connection (which takes the simple protocol only) and returns the
// text of its rows.
func query(ctx context.Context, conn *pgconn.PgConn, sql string) ([][][]byte, error) {
	results, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(results) == 0 {
		return nil, nil
	}
	return results[len(results)-1].Rows, nil
}

// literal quotes s as an SQL string literal (standard_conforming_strings
// is on, as it is by default since PostgreSQL 9.1).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// fatalCode marks as fatal a server error that connecting again cannot
// cure: authentication, a missing database, missing privileges, no free
// replication slot.
func fatalCode(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "28") || // invalid authorization
		pgErr.Code == "3D000" || // invalid_catalog_name: no such database
		pgErr.Code == "42501" || // insufficient_privilege
		pgErr.Code == "53400") { // configuration_limit_exceeded: max_replication_slots reached
		return &fatalError{err}
	}
	return err
}

// refused marks as fatal a server's refusal of a command (a table that
// does not exist, a role that does not own it...), but not a lost
// connection, nor a server's error that trying again may not meet:
// connection exceptions (08), rollbacks (40: deadlocks, serialization),
// insufficient resources (53), operator intervention (57: a terminated
// backend, a cancelled statement, a server shutting down), system errors
// (58), internal errors (XX) and a lock not available (55P03).
func refused(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch pgErr.Code[:min(2, len(pgErr.Code))] {
	case "08", "40", "53", "57", "58", "XX":
		return err
	}
	if pgErr.Code == "55P03" {
		return err
	}
	return &fatalError{err}
}

// server is what the consumer reads of the server it connected to.
type server struct {
	version  int    // server_version_num: 150004 for 15.4
	database string // current_database(), which the connection string may not name
	// senderTimeout is wal_sender_timeout, after which the server ends a
	// replication connection it heard nothing from; 0 for none.
	senderTimeout time.Duration
}

// setup checks wal_level and sets the publication and the slot up, and
// returns the slot's confirmed position.
func (c *Consumer) setup(ctx context.Context, conn *pgconn.PgConn) (server, LSN, error) {
	rows, err := query(ctx, conn, "SELECT current_setting('wal_level'), current_setting('server_version_num'), current_database(), "+
		"(SELECT setting FROM pg_settings WHERE name = 'wal_sender_timeout')")
	if err != nil {
		return server{}, 0, fmt.Errorf("pgcdc: reading the server's settings: %w", fatalCode(err))
	}
	if len(rows) != 1 || len(rows[0]) != 4 {
		return server{}, 0, fatal("pgcdc: reading the server's settings: %d rows", len(rows))
	}
	if level := string(rows[0][0]); level != "logical" {
		return server{}, 0, fatal("pgcdc: the server has wal_level=%s; logical replication needs wal_level=logical "+
			"(ALTER SYSTEM SET wal_level = logical, then restart the server)", level)
	}
	srv := server{database: string(rows[0][2])}
	srv.version, _ = strconv.Atoi(string(rows[0][1]))
	if ms, err := strconv.ParseInt(string(rows[0][3]), 10, 64); err == nil && ms > 0 {
		srv.senderTimeout = time.Duration(ms) * time.Millisecond
	}
	c.tel.setDatabase(srv.database)
	if err := c.setupPublication(ctx, conn, srv); err != nil {
		return server{}, 0, err
	}
	pos, err := c.setupSlot(ctx, conn)
	return srv, pos, err
}

func (c *Consumer) setupPublication(ctx context.Context, conn *pgconn.PgConn, srv server) error {
	for range 2 { // a second time after losing a race to create it
		rows, err := query(ctx, conn, "SELECT EXISTS (SELECT FROM pg_publication WHERE pubname = "+literal(c.publication)+")")
		if err != nil {
			return fmt.Errorf("pgcdc: reading publication %s: %w", c.publication, fatalCode(err))
		}
		if len(rows) == 1 && string(rows[0][0]) == "t" {
			return c.checkPublication(ctx, conn, srv)
		}
		if !c.cfg.createPublication {
			return fatal("pgcdc: publication %s does not exist; create it (CREATE PUBLICATION %s FOR TABLE %s WITH (publish_via_partition_root = true)) or let the consumer do it (WithCreatePublication(true))",
				c.publication, c.publication, c.tableList())
		}
		if err := c.checkReplicaIdentity(ctx, conn); err != nil {
			return err
		}
		// Through the root, a partitioned table's changes come under its
		// own name; otherwise under its partitions', which the consumer
		// was not asked for.
		_, err = query(ctx, conn, "CREATE PUBLICATION "+c.publication+" FOR TABLE "+c.tableList()+
			" WITH (publish_via_partition_root = true)")
		if err == nil {
			// Checked as one found would be: a partitioned table and one
			// of its partitions make a publication of the root alone.
			return c.checkPublication(ctx, conn, srv)
		}
		// Created meanwhile by another consumer: duplicate_object when
		// it committed before, unique_violation when the two commands
		// ran at once (the second waits for the first's row in the
		// catalog's unique index). Either way it is there to check.
		if !isCode(err, codeDuplicateObject) && !isCode(err, codeUniqueViolation) {
			return fmt.Errorf("pgcdc: creating publication %s: %w", c.publication, refused(err))
		}
	}
	return c.checkPublication(ctx, conn, srv)
}

// checkReplicaIdentity fails when a table has no replica identity (no
// primary key under the default identity, or none at all): once in a
// publication that publishes updates and deletes, the server would
// refuse every UPDATE and DELETE of it, the legacy system's included.
func (c *Consumer) checkReplicaIdentity(ctx context.Context, conn *pgconn.PgConn) error {
	names := make([]string, len(c.tables))
	for i, t := range c.tables {
		names[i] = "(" + escapedLiteral(t.schema) + ", " + escapedLiteral(t.name) + ")"
	}
	rows, err := query(ctx, conn, `SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE (n.nspname, c.relname) IN (`+strings.Join(names, ", ")+`) AND (c.relreplident = 'n'
OR c.relreplident = 'd' AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
OR c.relreplident = 'i' AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident))
ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("pgcdc: reading the tables' replica identity: %w", refused(err))
	}
	if len(rows) == 0 {
		return nil
	}
	bad := make([]string, len(rows))
	for i, r := range rows {
		bad[i] = string(r[0])
	}
	return fatal("pgcdc: %s: no REPLICA IDENTITY (no primary key): in a publication, the server would refuse "+
		"every UPDATE and DELETE of them; give them a primary key, or ALTER TABLE ... REPLICA IDENTITY FULL",
		strings.Join(bad, ", "))
}

// escapedLiteral quotes s as an SQL escape string literal, which reads
// the same whatever standard_conforming_strings is.
func escapedLiteral(s string) string {
	return "E'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// checkPublication fails when the publication leaves out a table or
// part of its changes: an operation it does not publish (publish =
// 'insert, update'), or, from PostgreSQL 15, a row filter (WHERE) or a
// column list of one of the consumer's tables. The changes it leaves out
// would be lost without a word, and the consumer cannot tell which.
func (c *Consumer) checkPublication(ctx context.Context, conn *pgconn.PgConn, srv server) error {
	truncate := "pubtruncate"
	if srv.version < 110000 { // PostgreSQL 10 publishes no truncates
		truncate = "true"
	}
	rows, err := query(ctx, conn, "SELECT pubinsert, pubupdate, pubdelete, "+truncate+" FROM pg_publication WHERE pubname = "+literal(c.publication))
	if err != nil {
		return fmt.Errorf("pgcdc: reading publication %s: %w", c.publication, fatalCode(err))
	}
	if len(rows) != 1 {
		// Dropped since the consumer found it: connecting again will
		// create it, or say it is missing.
		return fmt.Errorf("pgcdc: publication %s was dropped while the consumer set up", c.publication)
	}
	var lacks []string
	for i, op := range []string{"insert", "update", "delete", "truncate"} {
		if string(rows[0][i]) != "t" {
			lacks = append(lacks, op)
		}
	}
	filtered := "false, false"
	if srv.version >= 150000 {
		// A column list of the table's own (prattrs), even of every
		// column (which leaves out the columns added later), or one
		// that attnames, the columns published, shows: it lists all
		// but the generated ones when there is none.
		filtered = `t.rowfilter IS NOT NULL,
EXISTS (SELECT FROM pg_publication p JOIN pg_publication_rel r ON r.prpubid = p.oid
	WHERE p.pubname = t.pubname AND r.prrelid = c.oid AND r.prattrs IS NOT NULL)
OR EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	AND a.attgenerated = '' AND a.attname <> ALL (t.attnames))`
	}
	rows, err = query(ctx, conn, `SELECT t.schemaname, t.tablename, `+filtered+` FROM pg_publication_tables t
JOIN pg_namespace n ON n.nspname = t.schemaname JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.tablename
WHERE t.pubname = `+literal(c.publication))
	if err != nil {
		return fmt.Errorf("pgcdc: reading publication %s: %w", c.publication, fatalCode(err))
	}
	published := map[string]bool{}
	var rowFilters, columnLists []string
	for _, r := range rows {
		t := string(r[0]) + "." + string(r[1])
		published[t] = true
		if !c.wanted[t] {
			continue
		}
		if string(r[2]) == "t" {
			rowFilters = append(rowFilters, t)
		}
		if string(r[3]) == "t" {
			columnLists = append(columnLists, t)
		}
	}
	var missing []string
	for _, t := range c.tables {
		if !published[t.String()] {
			missing = append(missing, t.String())
		}
	}
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("does not publish %s: add them (ALTER PUBLICATION %s ADD TABLE ...; "+
			"a partitioned table also needs ALTER PUBLICATION %s SET (publish_via_partition_root = true))",
			strings.Join(missing, ", "), c.publication, c.publication))
	}
	if len(lacks) > 0 {
		problems = append(problems, fmt.Sprintf("does not publish %s: ALTER PUBLICATION %s SET (publish = 'insert, update, delete, truncate')",
			strings.Join(lacks, ", "), c.publication))
	}
	if len(rowFilters) > 0 {
		problems = append(problems, fmt.Sprintf("has a row filter (WHERE) for %s, which would lose the changes of the other rows: "+
			"publish the whole tables (ALTER PUBLICATION %s SET TABLE ..., without WHERE)", strings.Join(rowFilters, ", "), c.publication))
	}
	if len(columnLists) > 0 {
		problems = append(problems, fmt.Sprintf("has a column list for %s, which would lose the other columns: "+
			"publish the whole tables (ALTER PUBLICATION %s SET TABLE ..., without column lists)", strings.Join(columnLists, ", "), c.publication))
	}
	if len(problems) > 0 {
		return fatal("pgcdc: publication %s %s", c.publication, strings.Join(problems, "; it "))
	}
	return nil
}

// tableList is the consumer's tables, quoted, separated by commas.
func (c *Consumer) tableList() string {
	names := make([]string, len(c.tables))
	for i, t := range c.tables {
		names[i] = pgx.Identifier{t.schema, t.name}.Sanitize()
	}
	return strings.Join(names, ", ")
}

// setupSlot checks the slot, or creates it, and returns its confirmed
// position. A slot that another consumer is creating has no position
// until its creation ends, which waits for the transactions running on
// the server: it waits as long, polling, for a caller of Setup must not
// make the writes that the slot is to stream before the slot streams
// them. A slot that is gone while this consumer had a position in it is
// [ErrSlotLost], not a slot to create anew.
func (c *Consumer) setupSlot(ctx context.Context, conn *pgconn.PgConn) (LSN, error) {
	for created := 0; ; {
		// The connection's database, not the connection string's, which
		// may name none (the user's, then).
		rows, err := query(ctx, conn, "SELECT plugin, database, confirmed_flush_lsn, current_database(), wal_status FROM pg_replication_slots WHERE slot_name = "+literal(c.slot))
		if err != nil {
			return 0, fmt.Errorf("pgcdc: reading slot %s: %w", c.slot, fatalCode(err))
		}
		if len(rows) == 1 {
			plugin, database, current := string(rows[0][0]), string(rows[0][1]), string(rows[0][3])
			if plugin != "pgoutput" || database != current {
				return 0, fatal("pgcdc: slot %s exists for plugin %q and database %q; the consumer needs pgoutput and %q",
					c.slot, plugin, database, current)
			}
			if string(rows[0][4]) == "lost" {
				// The server removed WAL the slot still needed
				// (max_slot_wal_keep_size): changes are gone, which
				// connecting again cannot bring back.
				return 0, fatal("pgcdc: slot %s was invalidated (wal_status lost): the server removed write-ahead log it needed, "+
					"so changes were lost; drop the slot (DropSlot), set up again and copy the tables anew", c.slot)
			}
			if rows[0][2] == nil { // being created by another consumer
				if !sleep(ctx, slotPoll) {
					return 0, ctx.Err()
				}
				continue
			}
			lsn, err := pglogrepl.ParseLSN(string(rows[0][2]))
			if err != nil {
				return 0, fatal("pgcdc: slot %s: %w", c.slot, err)
			}
			return LSN(lsn), nil
		}
		if had := c.Confirmed(); had != 0 {
			return 0, &fatalError{fmt.Errorf("%w: slot %s no longer exists, and this consumer had confirmed %s in it: "+
				"the changes committed since may be lost; drop the slot (DropSlot), set up again and copy the tables anew",
				ErrSlotLost, c.slot, had)}
		}
		if created++; created > 3 {
			return 0, fmt.Errorf("pgcdc: slot %s: created and dropped concurrently", c.slot)
		}
		res, err := pglogrepl.CreateReplicationSlot(ctx, conn, c.slot, "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"})
		if err == nil {
			lsn, _ := pglogrepl.ParseLSN(res.ConsistentPoint) // 0 if unreadable: nothing confirmed yet
			return LSN(lsn), nil
		}
		if !isCode(err, codeDuplicateObject) {
			return 0, fmt.Errorf("pgcdc: creating slot %s: %w", c.slot, fatalCode(err))
		}
	}
}

// advance raises the confirmed position to lsn, never lowering it: a
// position confirmed lower than the slot's would make the server deliver
// again what was handled.
func (c *Consumer) advance(lsn LSN) {
	for {
		cur := c.confirmed.Load()
		if uint64(lsn) <= cur || c.confirmed.CompareAndSwap(cur, uint64(lsn)) {
			return
		}
	}
}

// stream is one connection's replication stream.
type stream struct {
	c    *Consumer
	conn *pgconn.PgConn
	dec  *decoder

	mu   sync.Mutex // sends of status updates
	sent LSN        // the position last reported
	next time.Time  // when a status update is due

	// silence is how long the server may send nothing while the stream
	// waits for it, before the connection is taken for dead.
	silence time.Duration

	tx   *Transaction // the transaction being received
	skip bool         // tx is one to skip: its commit is before the confirmed position
}

// session connects, sets up and streams until ctx ends or the connection
// fails; streamed says whether it got to stream.
func (c *Consumer) session(ctx context.Context) (streamed bool, err error) {
	conn, err := pgconn.ConnectConfig(ctx, c.conn)
	if err != nil {
		return false, fmt.Errorf("pgcdc: connecting: %w", fatalCode(err))
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	srv, pos, err := c.setup(ctx, conn)
	if err != nil {
		return false, err
	}
	// The server starts from the slot's position, whatever this process
	// confirmed before (on a connection that broke before the server
	// got the confirmation, say): the slot's is the truth.
	c.confirmed.Store(uint64(pos))
	err = pglogrepl.StartReplication(ctx, conn, c.slot, 0, pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: []string{"proto_version '1'", "publication_names " + literal(c.publication)},
	})
	if err != nil {
		if isCode(err, codeObjectInUse) {
			return false, fmt.Errorf("pgcdc: slot %s is in use by another consumer: %w", c.slot, err)
		}
		return false, fmt.Errorf("pgcdc: starting replication from slot %s: %w", c.slot, fatalCode(err))
	}
	s := &stream{c: c, conn: conn, dec: newDecoder(c.wanted), next: time.Now().Add(c.cfg.statusInterval),
		silence: silenceBound(c.cfg.statusInterval, srv.senderTimeout, int(c.silences.Load()))}
	return true, s.run(ctx)
}

// serverStreams reports whether the server, asked on a connection of
// its own, still has this stream's process streaming the slot: the
// connection is silent because the server is busy, not gone. A server
// that cannot be asked, or whose process for the stream has ended (as
// it does once wal_sender_timeout passes without word from the
// consumer), says no.
func (s *stream) serverStreams(ctx context.Context) bool {
	// Not bounded by the silence alone, which may be short: a busy
	// server (the case asked about) may be slow to answer.
	ctx, cancel := context.WithTimeout(ctx, max(s.silence, askTimeout))
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, s.c.conn)
	if err != nil {
		return false
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	rows, err := query(ctx, conn, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = "+literal(s.c.slot))
	return err == nil && len(rows) == 1 && string(rows[0][0]) == strconv.FormatUint(uint64(s.conn.PID()), 10)
}

// askTimeout is the least time serverStreams gives the server to say.
const askTimeout = 10 * time.Second

// silenceBound is how long a stream waits for a message from the server
// before it takes the connection for dead: 3 status intervals, in each
// of which the consumer asks the server for a reply, or the server's
// wal_sender_timeout if that is longer, for a server busy decoding a
// large transaction reads the consumer's messages, and replies, only
// every half of it. It doubles for each of the silences connections
// taken for dead since the last commit: a server before PostgreSQL 16
// decoding a long transaction of a rewritten table reads nothing and
// replies nothing until it is done, and a new connection starts the
// decoding again, so a fixed bound shorter than it would never see it
// end.
func silenceBound(interval, senderTimeout time.Duration, silences int) time.Duration {
	d := max(silentIntervals*interval, senderTimeout)
	for range min(silences, 30) {
		if d > maxSilence/2 {
			return maxSilence
		}
		d *= 2
	}
	return d
}

// maxSilence bounds silenceBound's doubling: a day.
const maxSilence = 24 * time.Hour

func (s *stream) run(ctx context.Context) error {
	heard := time.Now() // when the stream last got a message, or began to wait for one
	for {
		if err := s.status(false, false); err != nil {
			return err
		}
		s.mu.Lock()
		next := s.next
		s.mu.Unlock()
		deadline := heard.Add(s.silence)
		if next.Before(deadline) {
			deadline = next
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		msg, err := s.conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !pgconn.Timeout(err) {
				return fmt.Errorf("pgcdc: receiving: %w", err)
			}
			if time.Since(heard) < s.silence {
				continue
			}
			if s.serverStreams(ctx) {
				// A server before PostgreSQL 16 decoding a long
				// transaction (a table rewritten by ALTER TABLE) reads
				// nothing and sends nothing until it is done; a new
				// connection would only start the decoding again.
				heard = time.Now()
				continue
			}
			// Written to, and silent: a server gone behind a proxy, or a
			// NAT that forgot the connection, which TCP notices late if
			// ever. Run connects again, as for a lost connection, and
			// waits longer the next time (see silenceBound).
			s.c.silences.Add(1)
			return fmt.Errorf("pgcdc: no message from the server for %v, though the consumer asked for replies: "+
				"the connection is taken for lost", s.silence)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if err := s.copyData(ctx, m.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			// Decoding failed on the server: some causes pass (a
			// terminated backend), others come back on every
			// connection (the publication dropped, or created after
			// the changes the slot is at).
			return fmt.Errorf("pgcdc: replication: %w", refused(pgconn.ErrorResponseToPgError(m)))
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		default:
			return fmt.Errorf("pgcdc: replication: unexpected message %T", msg)
		}
		// After the message's handling, which may have run the handler
		// for long: the server's replies meanwhile wait to be read.
		heard = time.Now()
	}
}

// status sends a status update that reports the confirmed position,
// when one is due or when now, or when the position advanced since the
// last one. A periodic one (due, or with reply) asks the server to
// reply at once, so that a live server is never silent for long while
// the stream waits: see [stream.run]. It is called by the stream's
// goroutine, and while a handler runs by the goroutine that
// [stream.deliver] starts.
func (s *stream) status(now, reply bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	pos := LSN(s.c.confirmed.Load())
	due := !time.Now().Before(s.next)
	if !now && !due && pos == s.sent {
		return nil
	}
	s.next = time.Now().Add(s.c.cfg.statusInterval)
	// A position of 0 (none yet) is one the server ignores: the update
	// is only a request for a reply then.
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), s.conn,
		pglogrepl.StandbyStatusUpdate{WALWritePosition: pglogrepl.LSN(pos), ReplyRequested: reply || due})
	if err != nil {
		return fmt.Errorf("pgcdc: sending status: %w", err)
	}
	s.sent = pos
	return nil
}

func (s *stream) copyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		k, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fatal("pgcdc: a keepalive the consumer cannot read: %w", err)
		}
		s.c.serverEnd.Store(uint64(k.ServerWALEnd))
		if s.tx == nil {
			// Between transactions everything the server sent has been
			// handled, and what it sends next commits after its WAL
			// end: confirming it lets the server recycle the WAL of
			// other tables' changes, and bounds the lag.
			s.c.advance(LSN(k.ServerWALEnd))
		}
		return s.status(k.ReplyRequested, false)
	case pglogrepl.XLogDataByteID:
		// The server sends the same WAL again on every connection: a
		// message the consumer cannot read would come back each time, so
		// it is an error Run returns, not one it connects again after.
		x, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fatal("pgcdc: a message the consumer cannot read: %w", err)
		}
		s.c.serverEnd.Store(uint64(max(x.ServerWALEnd, x.WALStart)))
		m, err := parse(x.WALData)
		if err != nil {
			return fatal("pgcdc: decoding a message: %w", err)
		}
		return s.message(ctx, m)
	}
	return nil
}

// parse decodes a pgoutput message. pglogrepl reads some messages
// without checking their length, and allocates the length a column
// claims before reading it: a malformed message is an error here, not a
// panic or an allocation of gigabytes.
func parse(data []byte) (m pglogrepl.Message, err error) {
	if err := checkTuples(data); err != nil {
		return nil, fmt.Errorf("malformed message: %w", err)
	}
	defer func() {
		if v := recover(); v != nil {
			m, err = nil, fmt.Errorf("malformed message %q: %v", data[:min(len(data), 64)], v)
		}
	}()
	return pglogrepl.Parse(data)
}

// checkTuples checks that the rows of an insert, update or delete, and
// the tables of a truncate, end within data.
func checkTuples(data []byte) error {
	if len(data) < 6 {
		return nil // pglogrepl checks these
	}
	off := 5 // type and relation id
	var err error
	switch data[0] {
	case 'I':
		_, err = tupleEnd(data, off, "N")
	case 'U':
		if data[off] == 'K' || data[off] == 'O' {
			if off, err = tupleEnd(data, off, "KO"); err != nil {
				return err
			}
		}
		_, err = tupleEnd(data, off, "N")
	case 'D':
		_, err = tupleEnd(data, off, "KO")
	case 'T':
		if n := uint64(binary.BigEndian.Uint32(data[1:])); n*4 > uint64(len(data)-6) {
			err = fmt.Errorf("a truncate of %d tables in %d bytes", n, len(data))
		}
	}
	return err
}

// tupleEnd checks the tuple, of one of the kinds, at data[off:], and
// returns its end.
func tupleEnd(data []byte, off int, kinds string) (int, error) {
	if off >= len(data) || !strings.ContainsRune(kinds, rune(data[off])) {
		return 0, fmt.Errorf("expected a tuple of kind %s at %d", kinds, off)
	}
	off++
	if off+2 > len(data) {
		return 0, errors.New("tuple cut short")
	}
	n := int(binary.BigEndian.Uint16(data[off:]))
	off += 2
	for range n {
		if off >= len(data) {
			return 0, errors.New("tuple cut short")
		}
		kind := data[off]
		off++
		if kind == pglogrepl.TupleDataTypeText || kind == pglogrepl.TupleDataTypeBinary {
			if off+4 > len(data) {
				return 0, errors.New("tuple cut short")
			}
			l := uint64(binary.BigEndian.Uint32(data[off:]))
			off += 4
			if l > uint64(len(data)-off) {
				return 0, fmt.Errorf("a column of %d bytes; %d left", l, len(data)-off)
			}
			off += int(l)
		}
	}
	return off, nil
}

func (s *stream) message(ctx context.Context, msg pglogrepl.Message) error {
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		return s.dec.relation(m)
	case *pglogrepl.BeginMessage:
		s.tx = &Transaction{XID: m.Xid, CommitLSN: LSN(m.FinalLSN), CommitTime: m.CommitTime}
		// The server skips the commits before the slot's position
		// (a commit record's start before it); so does the consumer,
		// in case a server did not.
		s.skip = LSN(m.FinalLSN) < s.c.Confirmed()
	case *pglogrepl.OriginMessage:
		if s.tx != nil {
			s.tx.Origin = m.Name
		}
	case *pglogrepl.InsertMessage, *pglogrepl.UpdateMessage, *pglogrepl.DeleteMessage:
		if s.tx == nil {
			return fatal("pgcdc: a change outside a transaction")
		}
		ch, err := s.dec.change(m)
		if err != nil {
			return err
		}
		if ch != nil && !s.skip {
			s.tx.Changes = append(s.tx.Changes, *ch)
		}
	case *pglogrepl.TruncateMessage:
		if s.tx == nil {
			return fatal("pgcdc: a change outside a transaction")
		}
		chs, err := s.dec.truncate(m)
		if err != nil {
			return err
		}
		if !s.skip {
			s.tx.Changes = append(s.tx.Changes, chs...)
		}
	case *pglogrepl.CommitMessage:
		tx := s.tx
		if tx == nil {
			return fatal("pgcdc: a commit outside a transaction")
		}
		s.tx = nil
		tx.CommitLSN, tx.EndLSN, tx.CommitTime = LSN(m.CommitLSN), LSN(m.TransactionEndLSN), m.CommitTime
		if len(tx.Changes) > 0 && !s.skip {
			if err := s.deliver(ctx, tx); err != nil {
				return err
			}
		}
		s.c.advance(tx.EndLSN)
		s.c.silences.Store(0) // the server got through a transaction
		return s.status(len(tx.Changes) > 0, false)
	}
	return nil
}

// deliver hands tx to the handler, sending status updates meanwhile so
// that the server does not take a slow handler (or one failing and
// backing off) for a dead connection: nothing else uses the connection
// until deliver returns.
func (s *stream) deliver(ctx context.Context, tx *Transaction) error {
	stop := make(chan struct{})
	done := make(chan struct{})
	var keepErr error
	go func() {
		defer close(done)
		t := time.NewTicker(s.c.cfg.statusInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if err := s.status(true, true); err != nil {
					keepErr = err
					return
				}
			}
		}
	}()
	err := s.c.deliver(ctx, tx)
	close(stop)
	<-done
	if err == nil && keepErr != nil {
		// Handled, but the connection broke: the transaction is
		// delivered again on the next connection.
		return keepErr
	}
	return err
}
