// Package sqlitequeue is the embedded queue.Broker: a durable message queue
// kept in a table of the SQLite database that the embedded store also uses.
//
// # Schema
//
// New applies the component "queue" migrations (migrations/*.sql) through
// sqlitedb.Migrate. All messages live in one table, queue_messages:
//
//	seq          INTEGER PRIMARY KEY  publish order (the rowid)
//	id           TEXT UNIQUE          message id (random UUID), stable across redeliveries
//	topic        TEXT                 topic name; dead letters have topic queue.DeadLetter(t)
//	body         BLOB                 message body, at most queue.MaxBodyBytes
//	attempts     INTEGER              deliveries so far
//	available_at INTEGER              unix nanoseconds from which the row may be claimed
//	lease_token  TEXT                 random token of the current delivery, NULL when none
//	created_at   INTEGER              unix nanoseconds of Publish
//
// An acked message is deleted, so the table holds only pending, leased and
// dead-lettered messages.
//
// # Delivery
//
// Receive claims, in one IMMEDIATE transaction, the ready row (available_at
// not in the future) of its topic with the lowest seq: it sets a fresh random
// lease_token, increments attempts and moves available_at to the end of the
// visibility timeout. Ready messages are therefore delivered in publish order;
// a redelivered message keeps its place ahead of newer ones. Ack deletes the
// row and Nack releases it, both only while the delivery's lease_token still
// matches and its visibility timeout has not run out; otherwise they return
// queue.ErrLeaseLost. Nack makes the message ready again after
// Options.RetryDelay(attempt), or, when the delivery was its
// Options.MaxAttempts-th, moves it to queue.DeadLetter(topic) with its
// attempts reset. A lease that runs out on the last attempt is never
// delivered again: claims skip it, and it is dead-lettered by a sweep of
// every topic of the database, which each Broker runs in one of its claims
// at most once per sweepInterval (1s), or at once by a claim on its own
// topic that finds nothing else ready. A Receive waiting on a dead-letter topic
// therefore sees such a message within about sweepInterval plus
// pollInterval of its lease running out. A dead-lettered message keeps its
// id.
//
// Waiting: a Receive that finds nothing ready sleeps until a Publish or Nack
// on its topic in this process wakes it, until the earliest pending row of the
// topic becomes ready, or at most pollInterval, so messages published by
// another process (or another Broker) on the same database file are seen too.
// Each Publish wakes one waiting Receive, the one waiting longest, not all of
// them: every claim is a write transaction, and N consumers racing for one
// message would make N-1 of them for nothing.
//
// # Statements
//
// New prepares the queue's fixed statements once, on the database; Close
// closes them. Inside a transaction they run through tx.StmtContext, which
// prepares a statement on the transaction's own connection the first time
// that connection needs it. A transaction therefore never asks the pool
// for a second connection while it holds the write lock: a writer that
// waited for a connection held by the writers queued behind its lock would
// stall them all, and with a pool of one connection would wait forever.
//
// # Durability
//
// Publish returns only after the row is committed. Opened with sqlitedb.Open
// the database runs in WAL mode with synchronous=FULL, so a published message
// survives a process kill or a power loss, and so does every Ack, Nack and
// claim: a message leased when the process died is delivered again once its
// visibility timeout runs out.
//
// Threat model: the broker is not behind the barrier; bodies are stored in
// clear and MUST NOT hold personal data or secrets (see package queue).
package sqlitequeue

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/sqlitedb"
)

// pollInterval bounds how long a waiting Receive goes without looking at the
// table, which is how it sees rows written by other processes.
const pollInterval = 250 * time.Millisecond

// sweepInterval is how often at most a Broker's claims look, across every
// topic, for leases that ran out on their last attempt, to dead-letter them.
const sweepInterval = time.Second

//go:embed migrations/*.sql
var migrationFiles embed.FS

// The queue's fixed statements, prepared by New.
const (
	insertSQL = `INSERT INTO queue_messages (id, topic, body, available_at, created_at) VALUES (?, ?, ?, ?, ?)`
	// claimSQL leases the first ready message of topic ?3 at ?4, skipping a
	// lease that ran out on its last attempt (?5): that one waits for the
	// dead-letter sweep.
	claimSQL = `UPDATE queue_messages
		SET lease_token = ?1, available_at = ?2, attempts = attempts + 1
		WHERE seq = (SELECT seq FROM queue_messages
			WHERE topic = ?3 AND available_at <= ?4 AND (lease_token IS NULL OR attempts < ?5)
			ORDER BY seq LIMIT 1)
		RETURNING id, body, attempts`
	nextSQL    = `SELECT MIN(available_at) FROM queue_messages WHERE topic = ?`
	expiredSQL = `SELECT seq, topic FROM queue_messages
		WHERE lease_token IS NOT NULL AND available_at <= ? AND attempts >= ?`
	deadLetterSQL = `UPDATE queue_messages
		SET topic = ?, attempts = 0, available_at = ?, lease_token = NULL WHERE seq = ?`
	ackSQL = `DELETE FROM queue_messages
		WHERE id = ? AND lease_token = ? AND available_at > ?`
	releaseSQL = `UPDATE queue_messages
		SET available_at = ?, lease_token = NULL
		WHERE id = ? AND lease_token = ? AND available_at > ?`
	nackDeadSQL = `UPDATE queue_messages
		SET topic = ?, attempts = 0, available_at = ?, lease_token = NULL
		WHERE id = ? AND lease_token = ? AND available_at > ?`
)

// statements holds the prepared statements of the queries above. They are
// prepared on the *sql.DB; inside a transaction they MUST be used through
// tx.StmtContext, never through a query text or the DB, so that the
// transaction never asks the pool for a connection (see the package doc).
type statements struct {
	insert, claim, next, expired, deadLetter, ack, release, nackDead *sql.Stmt

	all []*sql.Stmt // every statement prepared, for close
}

// prepareStatements prepares the queue's statements on db.
func prepareStatements(ctx context.Context, db *sql.DB) (*statements, error) {
	s := &statements{}
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&s.insert, insertSQL},
		{&s.claim, claimSQL},
		{&s.next, nextSQL},
		{&s.expired, expiredSQL},
		{&s.deadLetter, deadLetterSQL},
		{&s.ack, ackSQL},
		{&s.release, releaseSQL},
		{&s.nackDead, nackDeadSQL},
	} {
		st, err := db.PrepareContext(ctx, p.query)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("prepare: %w", err), s.close())
		}
		*p.stmt = st
		s.all = append(s.all, st)
	}
	return s, nil
}

// close closes every prepared statement.
func (s *statements) close() error {
	var errs []error
	for _, st := range s.all {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// Broker is a queue.Broker over a SQLite database. It is safe for concurrent
// use, and several Brokers (in one process or many) may share one database
// file: each message is delivered to one of them at a time.
type Broker struct {
	db    *sqlitedb.DB
	opts  queue.Options
	stmts *statements

	done chan struct{} // closed by Close

	mu      sync.Mutex
	closed  bool
	waiters map[string][]*waiter // per topic, the waiting Receive calls, longest waiting first
	calls   sync.WaitGroup       // calls in flight, awaited by Close

	// sweepAt is the time, in unix nanoseconds, from which the next claim
	// runs the dead-letter sweep of every topic.
	sweepAt atomic.Int64
}

var _ queue.Broker = (*Broker)(nil)

// New returns a Broker storing its messages in db, after applying the
// queue's schema migrations and preparing its statements. opts take the
// defaults of queue.Options where zero.
//
// The caller keeps ownership of db, which it may share with other
// components: the Broker never closes it, and db MUST stay open until Close
// has returned. db should come from sqlitedb.Open, whose settings the
// durability and locking described in the package doc depend on.
func New(ctx context.Context, db *sqlitedb.DB, opts queue.Options) (*Broker, error) {
	if db == nil {
		return nil, errors.New("sqlitequeue: nil database")
	}
	migrations, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("sqlitequeue: migrations: %w", err)
	}
	if err := sqlitedb.Migrate(ctx, db.DB, "queue", migrations); err != nil {
		return nil, fmt.Errorf("sqlitequeue: %w", err)
	}
	stmts, err := prepareStatements(ctx, db.DB)
	if err != nil {
		return nil, fmt.Errorf("sqlitequeue: %w", err)
	}
	b := &Broker{
		db:      db,
		opts:    opts.WithDefaults(),
		stmts:   stmts,
		done:    make(chan struct{}),
		waiters: make(map[string][]*waiter),
	}
	return b, nil
}

// Publish stores body on topic; the row is committed before Publish
// returns. Concurrent publishes, and other writes to the database, share
// transactions (sqlitedb.DB.Write). A ctx cancelled once the insert is
// queued does not cancel it: the message may be stored even when Publish is
// abandoned, as at-least-once allows.
func (b *Broker) Publish(ctx context.Context, topic string, body []byte) error {
	if topic == "" {
		return fmt.Errorf("sqlitequeue: publish: %w: empty topic", queue.ErrInvalid)
	}
	if len(body) > queue.MaxBodyBytes {
		return fmt.Errorf("sqlitequeue: publish: %w: body of %d bytes exceeds %d",
			queue.ErrInvalid, len(body), queue.MaxBodyBytes)
	}
	if err := b.enter(); err != nil {
		return err
	}
	defer b.calls.Done()
	if err := ctx.Err(); err != nil {
		return err
	}
	if body == nil {
		body = []byte{} // nil would be stored as NULL
	}
	err := b.db.Write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		now := time.Now().UnixNano()
		_, err := tx.StmtContext(ctx, b.stmts.insert).ExecContext(ctx, uuid.NewString(), topic, body, now, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitequeue: publish: %w", err)
	}
	b.wake(topic)
	return nil
}

// Receive blocks until a message of topic is ready and claims it, until ctx
// is done (returning ctx.Err()) or until the Broker is closed
// (queue.ErrClosed).
func (b *Broker) Receive(ctx context.Context, topic string) (queue.Delivery, error) {
	if topic == "" {
		return nil, fmt.Errorf("sqlitequeue: receive: %w: empty topic", queue.ErrInvalid)
	}
	if err := b.enter(); err != nil {
		return nil, err
	}
	defer b.calls.Done()
	timer := time.NewTimer(pollInterval)
	defer timer.Stop()
	for {
		w := b.wait(topic) // in line before the claim so no wake-up is missed
		d, next, err := b.claim(ctx, topic)
		if err != nil || d != nil {
			// A message claimed uses up a wake-up; one not used goes on
			// to the next Receive in line.
			if b.leave(topic, w) && d == nil {
				b.wake(topic)
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, fmt.Errorf("sqlitequeue: receive: %w", err)
			}
			return d, nil
		}
		wait := pollInterval
		if next.Valid {
			wait = max(0, min(wait, time.Until(time.Unix(0, next.Int64))))
		}
		timer.Reset(wait)
		var stop error
		select {
		case <-ctx.Done():
			stop = ctx.Err()
		case <-b.done:
			stop = queue.ErrClosed
		case <-w.ch:
			continue
		case <-timer.C:
		}
		if b.leave(topic, w) {
			b.wake(topic)
		}
		if stop != nil {
			return nil, stop
		}
	}
}

// claim leases the first ready message of topic. When there is none it
// returns the time, in unix nanoseconds, at which the earliest pending
// message of topic becomes ready, if any. It runs the dead-letter sweep of
// every topic first when sweepInterval has passed since the last one, and
// after finding nothing to claim when a message of topic is ready but was
// skipped, which only a lease that ran out on its last attempt is.
func (b *Broker) claim(ctx context.Context, topic string) (*delivery, sql.NullInt64, error) {
	var (
		next sql.NullInt64
		d    *delivery
		dead []string
	)
	err := b.db.Write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		now := time.Now().UnixNano()
		swept := false
		if at := b.sweepAt.Load(); now >= at && b.sweepAt.CompareAndSwap(at, now+sweepInterval.Nanoseconds()) {
			var err error
			if dead, err = b.deadLetterExpired(ctx, tx, now); err != nil {
				return err
			}
			swept = true
		}
		c := &delivery{b: b, topic: topic, token: rand.Text()}
		err := tx.StmtContext(ctx, b.stmts.claim).QueryRowContext(ctx,
			c.token, now+b.opts.Visibility.Nanoseconds(), topic, now, b.opts.MaxAttempts).
			Scan(&c.id, &c.body, &c.attempt)
		switch {
		case err == nil:
			d = c
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		nextStmt := tx.StmtContext(ctx, b.stmts.next)
		if err := nextStmt.QueryRowContext(ctx, topic).Scan(&next); err != nil {
			return err
		}
		if next.Valid && next.Int64 <= now && !swept {
			if dead, err = b.deadLetterExpired(ctx, tx, now); err != nil {
				return err
			}
			return nextStmt.QueryRowContext(ctx, topic).Scan(&next)
		}
		return nil
	})
	if err != nil {
		return nil, sql.NullInt64{}, err
	}
	for _, t := range dead {
		b.wake(t)
	}
	return d, next, nil
}

// deadLetterExpired moves to their dead-letter topics the messages whose
// lease ran out at now on their last attempt, and returns those topics.
func (b *Broker) deadLetterExpired(ctx context.Context, tx *sql.Tx, now int64) ([]string, error) {
	rows, err := tx.StmtContext(ctx, b.stmts.expired).QueryContext(ctx, now, b.opts.MaxAttempts)
	if err != nil {
		return nil, err
	}
	type expired struct {
		seq   int64
		topic string
	}
	var all []expired
	for rows.Next() {
		var e expired
		if err := rows.Scan(&e.seq, &e.topic); err != nil {
			_ = rows.Close()
			return nil, err
		}
		all = append(all, e)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, nil
	}
	deadLetter := tx.StmtContext(ctx, b.stmts.deadLetter)
	topics := make([]string, 0, len(all))
	for _, e := range all {
		dead := queue.DeadLetter(e.topic)
		if _, err := deadLetter.ExecContext(ctx, dead, now, e.seq); err != nil {
			return nil, err
		}
		topics = append(topics, dead)
	}
	return topics, nil
}

// Ping reports whether the database answers.
func (b *Broker) Ping(ctx context.Context) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.calls.Done()
	if err := b.db.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlitequeue: ping: %w", err)
	}
	return nil
}

// Close stops the Broker: blocked and later Receive calls, and every later
// call, return queue.ErrClosed. Close waits for the calls in flight to return,
// then closes the Broker's prepared statements; it does not close the
// database, which stays the caller's. Messages stay stored; leased ones are
// delivered again, by a later Broker on the same database, once their
// visibility timeout runs out. Close is idempotent.
func (b *Broker) Close() error {
	b.mu.Lock()
	first := !b.closed
	if first {
		b.closed = true
		close(b.done)
	}
	b.mu.Unlock()
	b.calls.Wait()
	if !first {
		return nil
	}
	if err := b.stmts.close(); err != nil {
		return fmt.Errorf("sqlitequeue: close: %w", err)
	}
	return nil
}

// enter registers a call in flight, or returns queue.ErrClosed.
func (b *Broker) enter() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return queue.ErrClosed
	}
	b.calls.Add(1)
	return nil
}

// waiter is a Receive call waiting for a message of its topic.
type waiter struct {
	ch    chan struct{} // closed by the wake that picks it
	woken bool          // guarded by Broker.mu
}

// wait puts a Receive call of topic in line for a wake-up.
func (b *Broker) wait(topic string) *waiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	w := &waiter{ch: make(chan struct{})}
	b.waiters[topic] = append(b.waiters[topic], w)
	return w
}

// leave takes w out of topic's line and reports whether a wake-up had
// picked it already, which its caller then passes on if it did not use it.
func (b *Broker) leave(topic string, w *waiter) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if w.woken {
		return true
	}
	line := b.waiters[topic]
	if i := slices.Index(line, w); i >= 0 {
		b.waiters[topic] = slices.Delete(line, i, i+1)
	}
	return false
}

// wake wakes the Receive call of topic in this process that has waited
// longest, if any: one message published, one claim, instead of every
// waiting consumer racing for it.
func (b *Broker) wake(topic string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	line := b.waiters[topic]
	if len(line) == 0 {
		return
	}
	w := line[0]
	b.waiters[topic] = line[1:]
	if len(line) == 1 {
		delete(b.waiters, topic)
	}
	w.woken = true
	close(w.ch)
}

// delivery is one claim of a message, identified by its lease token.
type delivery struct {
	b       *Broker
	id      string
	topic   string
	body    []byte
	attempt int
	token   string
}

func (d *delivery) ID() string    { return d.id }
func (d *delivery) Topic() string { return d.topic }
func (d *delivery) Body() []byte  { return d.body }
func (d *delivery) Attempt() int  { return d.attempt }

// Ack deletes the message while the delivery still holds its lease.
func (d *delivery) Ack(ctx context.Context) error {
	return d.settle(ctx, "ack", "", d.b.stmts.ack, d.id, d.token, time.Now().UnixNano())
}

// Nack releases the message for redelivery after the retry delay, or moves
// it to the dead-letter topic when this was its last attempt.
func (d *delivery) Nack(ctx context.Context) error {
	now := time.Now().UnixNano()
	if d.attempt >= d.b.opts.MaxAttempts {
		dead := queue.DeadLetter(d.topic)
		return d.settle(ctx, "nack", dead, d.b.stmts.nackDead, dead, now, d.id, d.token, now)
	}
	return d.settle(ctx, "nack", d.topic, d.b.stmts.release,
		now+d.b.opts.RetryDelay(d.attempt).Nanoseconds(), d.id, d.token, now)
}

// settle runs stmt, the statement that ends the delivery, which must touch
// exactly its row, and then wakes the waiters of topic when topic is not
// empty.
func (d *delivery) settle(ctx context.Context, op, topic string, stmt *sql.Stmt, args ...any) error {
	if err := d.b.enter(); err != nil {
		return err
	}
	defer d.b.calls.Done()
	var n int64
	err := d.b.db.Write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitequeue: %s: %w", op, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlitequeue: %s message %s: %w", op, d.id, queue.ErrLeaseLost)
	}
	if topic != "" {
		d.b.wake(topic)
	}
	return nil
}
