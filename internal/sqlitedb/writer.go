package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/idvault/idvault/internal/groupcommit"
)

// maxWriteBatch bounds how many write functions share one transaction, so
// that one commit never holds the write lock for long.
const maxWriteBatch = 64

// DB is the database of sqlitedb.Open: the *sql.DB, for reads and for
// statements prepared once, and the process's writer, through which every
// write transaction of the store and the queue runs (see Write). The writer
// keeps one connection of the pool for itself, so a pool limited to one
// connection (SetMaxOpenConns(1)) would leave none for reads.
type DB struct {
	*sql.DB

	commits *groupcommit.Committer[*writeJob]

	// conn is the writer's own connection, taken from the pool at the first
	// commit and kept until Close; only the committing caller uses it.
	mu     sync.Mutex
	conn   *sql.Conn
	closed bool
}

// writeJob is one call of Write.
type writeJob struct {
	caller   context.Context // the caller's context, checked before fn runs
	ctx      context.Context // what fn runs with: the caller's values, never cancelled
	fn       func(context.Context, *sql.Tx) error
	err      error // fn's error, or the caller's context's
	panicked any   // what fn panicked with, raised again on the caller's goroutine
}

func newDB(db *sql.DB) *DB {
	d := &DB{DB: db}
	d.commits = groupcommit.New(maxWriteBatch, d.commit)
	return d
}

// Write runs fn in a write transaction and returns once that transaction is
// committed (durably: the database runs with synchronous=FULL), with fn's
// error or the commit's. When fn fails nothing it wrote is kept.
//
// Concurrent calls share transactions: the calls queued while one commits
// run next, one after another, in one transaction on one connection, each
// in a savepoint, so one fsync and one write of each page they share serve
// them all, and the writer's connection keeps its page cache (no other
// connection of this process changes the database). A call's savepoint is
// rolled back when its fn fails; the others still commit. If the shared
// commit fails, every call of it fails with that error and nothing of any of
// them is kept.
//
// fn MUST do all its work through tx and run its statements with the ctx it
// is given, which carries the caller's values but is never cancelled: an
// interrupted statement would roll back the whole shared transaction. A
// caller whose ctx is done before its turn gets ctx.Err() and fn does not
// run. fn runs on another caller's goroutine, MUST NOT call Write (it would
// wait for itself) and MUST NOT wait for anything outside the database.
// Whatever fn computes is only valid when Write returns nil. A panic in fn
// fails the whole shared transaction and is raised again on the caller's
// goroutine.
func (d *DB) Write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	j := &writeJob{caller: ctx, ctx: context.WithoutCancel(ctx), fn: fn}
	err := d.commits.Do(j)
	if j.panicked != nil {
		panic(j.panicked)
	}
	if err != nil {
		return err
	}
	return j.err
}

// Close closes the writer's connection and then the database.
func (d *DB) Close() error {
	d.mu.Lock()
	d.closed = true
	conn := d.conn
	d.conn = nil
	d.mu.Unlock()
	var errs []error
	if conn != nil {
		errs = append(errs, conn.Close())
	}
	errs = append(errs, d.DB.Close())
	return errors.Join(errs...)
}

// writeConn returns the writer's connection, taking it from the pool the
// first time.
func (d *DB) writeConn() (*sql.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errors.New("sqlitedb: write: database closed")
	}
	if d.conn == nil {
		conn, err := d.DB.Conn(context.Background())
		if err != nil {
			return nil, fmt.Errorf("sqlitedb: write: %w", err)
		}
		d.conn = conn
	}
	return d.conn, nil
}

// dropConn closes the writer's connection after a failure that may have left
// it unusable; the next commit takes a fresh one.
func (d *DB) dropConn(conn *sql.Conn) {
	d.mu.Lock()
	if d.conn == conn {
		d.conn = nil
	}
	d.mu.Unlock()
	_ = conn.Close()
}

// commit runs batch in one transaction. It returns an error only when the
// transaction as a whole failed; each job's own outcome is in its err.
func (d *DB) commit(batch []*writeJob) (err error) {
	conn, err := d.writeConn()
	if err != nil {
		return err
	}
	// The transaction is not tied to any caller's context: cancelling one
	// must not roll back the others.
	ctx := context.Background()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		d.dropConn(conn)
		return fmt.Errorf("sqlitedb: write: begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			err = errors.New("sqlitedb: write: a write function sharing this transaction panicked")
			return
		}
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	// A lone call needs no savepoint: its failure rolls back the
	// transaction, which holds nothing else.
	if len(batch) == 1 {
		j := batch[0]
		if j.run(tx) != nil {
			_ = tx.Rollback()
			return nil
		}
	} else {
		for _, j := range batch {
			if err := j.runInSavepoint(ctx, tx); err != nil {
				return err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		d.dropConn(conn)
		return fmt.Errorf("sqlitedb: write: commit: %w", err)
	}
	return nil
}

// run runs the job's fn unless its caller has given up, records its outcome
// and returns it. A panic is recorded and passed on to commit.
func (j *writeJob) run(tx *sql.Tx) error {
	if err := j.caller.Err(); err != nil {
		j.err = err
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			j.panicked = p
			panic(p)
		}
	}()
	j.err = j.fn(j.ctx, tx)
	return j.err
}

// runInSavepoint runs the job inside a savepoint of tx, rolled back when the
// job fails. It returns an error only when the savepoint statements
// themselves fail, which leaves tx unusable.
func (j *writeJob) runInSavepoint(ctx context.Context, tx *sql.Tx) error {
	if err := j.caller.Err(); err != nil {
		j.err = err
		return nil
	}
	if _, err := tx.ExecContext(ctx, "SAVEPOINT write"); err != nil {
		return fmt.Errorf("sqlitedb: write: savepoint: %w", err)
	}
	if j.run(tx) != nil {
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO write"); err != nil {
			return fmt.Errorf("sqlitedb: write: roll back savepoint: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, "RELEASE write"); err != nil {
		return fmt.Errorf("sqlitedb: write: release savepoint: %w", err)
	}
	return nil
}
