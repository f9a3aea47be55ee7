// Package sqlite is the embedded store.Backend: records kept in the SQLite
// database that the embedded queue shares (see package sqlitedb).
//
// # Schema
//
// Two tables, created by the embedded migrations of component "store":
//
//	store_records (collection, tenant, id, version, body BLOB)
//	    PRIMARY KEY (collection, tenant, id)
//	store_index   (collection, tenant, id, field, value)
//	    PRIMARY KEY (collection, tenant, id, field)
//	    FOREIGN KEY (collection, tenant, id) -> store_records ON DELETE CASCADE
//	    INDEX store_index_value (collection, tenant, field, value, id)
//
// Each declared index field of a record is one store_index row. A query
// ordered by a field walks store_index_value for that field and joins one
// store_index row per condition; a query ordered by id walks the primary key
// of store_records. Every value — collection, tenant, id, field names, index
// values, versions and bodies — is bound as a statement parameter; the SQL
// text is built only from fixed fragments.
//
// Put, Update and Delete each run in one IMMEDIATE write transaction, so a
// record's body, index rows and version change together or not at all. Get
// reads with one statement and Query in one read transaction, so a record's
// body and index always come from the same snapshot.
//
// # Prepared statements
//
// Compiling SQL text took a fifth of the CPU of a Query page, so no call
// compiles its SQL anew in the steady state. New prepares the fixed texts:
// Get's, the writes', and the index lookup of a Query page, whose IN list
// is padded (with the page's last id) to one of a few lengths, 1, 2, 4, …,
// 512 and store.MaxLimit. Query prepares its generated text on first use
// and keeps it, up to maxCachedQueries texts; a text beyond that runs
// unprepared. Every statement is prepared on the pool (db.PrepareContext)
// before a transaction opens, never while one is held, and runs in the
// transaction through tx.StmtContext, which prepares it again, at most once
// per connection, on the transaction's own connection: a caller holding a
// connection — a writer holding the write lock above all — never waits
// for the pool to give it another one, which callers waiting on it may hold.
//
// Index field names are 1 to 64 characters of [A-Za-z0-9_.]; collection,
// tenant and id are 1 to 256 bytes. Anything else fails with store.ErrInvalid.
// A Query with Limit <= 0 returns at most store.DefaultLimit records; a larger
// Limit is capped at store.MaxLimit.
//
// # Cursor format
//
// A page cursor is base64url (no padding) of:
//
//	0x01 | shape[16] | uvarint(len(value)) | value | id
//
// where value and id are the OrderBy value (empty when ordering by id) and id
// of the last record of the page, and shape is the first 16 bytes of SHA-256
// over the length-prefixed collection, tenant, OrderBy, direction and sorted
// conditions of the query. A cursor presented with a query of another shape
// fails with store.ErrInvalid. The cursor is not authenticated: a caller who
// forges one only moves the start of its own query, which always filters on
// its own collection and tenant.
//
// # Threat model
//
// The database file, its WAL and every backup hold in clear: collection
// names, tenant ids, record ids, versions, index field names and index
// values, and the length of each body. Bodies are sealed by the barrier above
// this layer (see store.View), so a thief of the file learns nothing of their
// content. Index values MUST NOT hold personal data: use statuses, fixed-width
// timestamps, opaque ids and blind indexes only. This package trusts the
// database file: it does not detect rows edited by someone who can write it
// (a body moved between records fails to open in the barrier, which binds
// each body to its place).
//
// The database is shared with other components and owned by the caller:
// Close marks the Store closed but leaves the database open.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/idvault/idvault/internal/sqlitedb"
	"github.com/idvault/idvault/internal/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

var errClosed = errors.New("sqlite store: closed")

// Store is the SQLite store.Backend. It is safe for concurrent use.
type Store struct {
	db     *sqlitedb.DB
	closed atomic.Bool
	// fixed holds the prepared statements of fixedStatements, by text.
	// New fills it; it is read-only after.
	fixed map[string]*sql.Stmt
	// index holds the prepared index lookups of a page, one for each
	// length of indexSizes. New fills it; it is read-only after.
	index []*sql.Stmt
	// queries caches the prepared statements of Query's generated texts.
	queries stmtCache
}

const getSQL = `SELECT version, body, NULL, NULL FROM store_records WHERE collection = ?1 AND tenant = ?2 AND id = ?3
		UNION ALL
		SELECT NULL, NULL, field, value FROM store_index WHERE collection = ?1 AND tenant = ?2 AND id = ?3`

// The statements of writes, prepared when the Store is made (see txExec).
const (
	putSQL         = `INSERT INTO store_records (collection, tenant, id, version, body) VALUES (?, ?, ?, 1, ?) ON CONFLICT DO NOTHING`
	updateSQL      = `UPDATE store_records SET version = version + 1, body = ? WHERE collection = ? AND tenant = ? AND id = ? AND version = ?`
	indexRowsSQL   = `SELECT field, value FROM store_index WHERE collection = ? AND tenant = ? AND id = ?`
	setIndexSQL    = `UPDATE store_index SET value = ? WHERE collection = ? AND tenant = ? AND id = ? AND field = ?`
	dropIndexSQL   = `DELETE FROM store_index WHERE collection = ? AND tenant = ? AND id = ? AND field = ?`
	deleteSQL      = `DELETE FROM store_records WHERE collection = ? AND tenant = ? AND id = ? AND (? = 0 OR version = ?)`
	insertIndexSQL = `INSERT INTO store_index (collection, tenant, id, field, value) VALUES (?, ?, ?, ?, ?)`
)

// existsSQL tells a compare-and-swap that changed no row whether the record
// exists (see casResult).
const existsSQL = `SELECT 1 FROM store_records WHERE collection = ? AND tenant = ? AND id = ?`

// fixedStatements lists the texts New prepares into Store.fixed.
var fixedStatements = []string{getSQL, putSQL, updateSQL, indexRowsSQL, setIndexSQL, dropIndexSQL, deleteSQL, insertIndexSQL, existsSQL}

// indexSizes are the lengths of the IN lists of indexSQL, ascending; the
// last is store.MaxLimit, the longest page. A page's ids are padded to the
// next length, so a few statements serve every page size.
var indexSizes = []int{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, store.MaxLimit}

// indexSQL returns the text selecting (id, field, value) of the index rows
// of n ids of one collection and tenant; its arguments are collection,
// tenant and the n ids.
func indexSQL(n int) string {
	return `SELECT id, field, value FROM store_index WHERE collection = ? AND tenant = ? AND id IN (` +
		strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + `)`
}

var _ store.Backend = (*Store)(nil)

// New applies the store's migrations to db and returns a Store over it.
// sqlitedb.Open turns foreign keys on, which deletes rely on to remove index
// rows. The caller keeps ownership of db and closes it after
// closing the Store.
func New(ctx context.Context, db *sqlitedb.DB) (*Store, error) {
	if db == nil {
		return nil, errors.New("new sqlite store: nil db")
	}
	migrations, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("new sqlite store: %w", err)
	}
	if err := sqlitedb.Migrate(ctx, db.DB, "store", migrations); err != nil {
		return nil, fmt.Errorf("new sqlite store: %w", err)
	}
	st := &Store{db: db, fixed: make(map[string]*sql.Stmt, len(fixedStatements))}
	for _, text := range fixedStatements {
		p, err := db.PrepareContext(ctx, text)
		if err != nil {
			_ = st.Close()
			return nil, fmt.Errorf("new sqlite store: prepare: %w", err)
		}
		st.fixed[text] = p
	}
	for _, n := range indexSizes {
		p, err := db.PrepareContext(ctx, indexSQL(n))
		if err != nil {
			_ = st.Close()
			return nil, fmt.Errorf("new sqlite store: prepare index lookup of %d ids: %w", n, err)
		}
		st.index = append(st.index, p)
	}
	return st, nil
}

// Close marks the Store closed, so later calls fail, and closes its
// prepared statements; a call still in flight may fail too. It does not
// close the database, which the caller owns. Close is idempotent.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	var errs []error
	for _, st := range s.fixed {
		errs = append(errs, st.Close())
	}
	for _, st := range s.index {
		errs = append(errs, st.Close())
	}
	errs = append(errs, s.queries.close())
	return errors.Join(errs...)
}

// txExec runs query, one of fixedStatements, within tx through its prepared
// statement. It never asks the pool for a connection: a writer holding the
// write lock must not wait for a connection that other writers, waiting for
// that lock, hold.
func (s *Store) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	return tx.StmtContext(ctx, s.fixed[query]).ExecContext(ctx, args...)
}

// maxCachedQueries bounds the statements a stmtCache keeps. Each is
// prepared again on every pooled connection that runs it, so the bound
// also caps the SQLite memory they take.
const maxCachedQueries = 256

// stmtCache keeps prepared statements by SQL text, at most
// maxCachedQueries of them; it never evicts one. Its zero value is empty and
// ready; it is safe for concurrent use.
type stmtCache struct {
	mu     sync.Mutex
	closed bool
	stmts  map[string]*sql.Stmt
}

// get returns the prepared statement of text, preparing it on db if the
// cache has room for it, or nil if it has none or is closed: the caller then
// runs text unprepared. Preparing takes a connection from db's pool, so get
// MUST NOT be called while holding one, as inside a transaction.
func (c *stmtCache) get(ctx context.Context, db *sql.DB, text string) (*sql.Stmt, error) {
	c.mu.Lock()
	st, ok := c.stmts[text]
	full := c.closed || len(c.stmts) >= maxCachedQueries
	c.mu.Unlock()
	if ok || full {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, text)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	cur, ok := c.stmts[text]
	keep := !ok && !c.closed && len(c.stmts) < maxCachedQueries
	if keep {
		if c.stmts == nil {
			c.stmts = make(map[string]*sql.Stmt)
		}
		c.stmts[text] = st
	}
	c.mu.Unlock()
	if keep {
		return st, nil
	}
	// Another call cached text first, or the cache filled or closed
	// meanwhile.
	_ = st.Close()
	return cur, nil
}

// close closes the cached statements and makes get cache no more.
func (c *stmtCache) close() error {
	c.mu.Lock()
	stmts := c.stmts
	c.stmts, c.closed = nil, true
	c.mu.Unlock()
	var errs []error
	for _, st := range stmts {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// txQuery runs text with args within tx, through st, its prepared statement,
// or unprepared when st is nil.
func txQuery(ctx context.Context, tx *sql.Tx, st *sql.Stmt, text string, args ...any) (*sql.Rows, error) {
	if st != nil {
		return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, text, args...)
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite store: ping: %w", err)
	}
	return nil
}

// Get returns the record at (collection, tenant, id) or store.ErrNotFound.
func (s *Store) Get(ctx context.Context, collection, tenant, id string) (store.Record, error) {
	if err := s.check(collection, tenant, id); err != nil {
		return store.Record{}, fmt.Errorf("get: %w", err)
	}
	rec, err := s.get(ctx, collection, tenant, id)
	if err != nil {
		return store.Record{}, fmt.Errorf("get %s/%s: %w", collection, id, err)
	}
	return rec, nil
}

// get reads the record and its index rows in one statement, so both come
// from one snapshot without a transaction: the record row carries a version,
// each index row a field.
func (s *Store) get(ctx context.Context, collection, tenant, id string) (store.Record, error) {
	rows, err := s.fixed[getSQL].QueryContext(ctx, collection, tenant, id)
	if err != nil {
		return store.Record{}, err
	}
	defer func() { _ = rows.Close() }()
	rec := store.Record{Collection: collection, Tenant: tenant, ID: id, Index: map[string]string{}}
	for rows.Next() {
		var (
			version      sql.NullInt64
			body         []byte
			field, value sql.NullString
		)
		if err := rows.Scan(&version, &body, &field, &value); err != nil {
			return store.Record{}, err
		}
		if version.Valid {
			rec.Version, rec.Body = version.Int64, body
		} else {
			rec.Index[field.String] = value.String
		}
	}
	if err := rows.Err(); err != nil {
		return store.Record{}, err
	}
	if rec.Version == 0 {
		return store.Record{}, store.ErrNotFound
	}
	return rec, nil
}

// Put creates rec with version 1, or returns store.ErrConflict if its id
// exists. rec.Version is ignored.
func (s *Store) Put(ctx context.Context, rec store.Record) (store.Record, error) {
	if err := s.checkRecord(rec); err != nil {
		return store.Record{}, fmt.Errorf("put: %w", err)
	}
	if err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error { return s.put(ctx, tx, rec) }); err != nil {
		return store.Record{}, fmt.Errorf("put %s/%s: %w", rec.Collection, rec.ID, err)
	}
	rec.Version = 1
	return rec, nil
}

// Update replaces body and index of the record if its stored version is
// rec.Version, and returns it with the next version. It returns
// store.ErrNotFound if the record is absent and store.ErrConflict on a
// version mismatch.
func (s *Store) Update(ctx context.Context, rec store.Record) (store.Record, error) {
	if err := s.checkUpdate(rec); err != nil {
		return store.Record{}, fmt.Errorf("update: %w", err)
	}
	if err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error { return s.update(ctx, tx, rec) }); err != nil {
		return store.Record{}, fmt.Errorf("update %s/%s: %w", rec.Collection, rec.ID, err)
	}
	rec.Version++
	return rec, nil
}

// Delete removes the record if its stored version is version (0: any). It
// returns store.ErrNotFound if the record is absent and store.ErrConflict on
// a version mismatch. Its index rows go with it (foreign key cascade).
func (s *Store) Delete(ctx context.Context, collection, tenant, id string, version int64) error {
	rec := store.Record{Collection: collection, Tenant: tenant, ID: id, Version: version}
	if err := s.checkDelete(rec); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error { return s.delete(ctx, tx, rec) }); err != nil {
		return fmt.Errorf("delete %s/%s: %w", collection, id, err)
	}
	return nil
}

// Apply performs writes in one transaction: all of them or none.
func (s *Store) Apply(ctx context.Context, writes []store.Write) ([]store.Record, error) {
	if len(writes) > store.MaxBatch {
		return nil, fmt.Errorf("apply: %d writes, more than %d: %w", len(writes), store.MaxBatch, store.ErrInvalid)
	}
	out := make([]store.Record, len(writes))
	for i, w := range writes {
		var err error
		switch w.Op {
		case store.OpPut:
			err = s.checkRecord(w.Record)
			out[i] = w.Record
			out[i].Version = 1
		case store.OpUpdate:
			err = s.checkUpdate(w.Record)
			out[i] = w.Record
			out[i].Version++
		case store.OpDelete:
			err = s.checkDelete(w.Record)
			out[i] = w.Record
		default:
			err = fmt.Errorf("unknown write op %d: %w", w.Op, store.ErrInvalid)
		}
		if err != nil {
			return nil, fmt.Errorf("apply: %w", &store.BatchError{Index: i, Err: err})
		}
	}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for i, w := range writes {
			var err error
			switch w.Op {
			case store.OpPut:
				err = s.put(ctx, tx, w.Record)
			case store.OpUpdate:
				err = s.update(ctx, tx, w.Record)
			case store.OpDelete:
				err = s.delete(ctx, tx, w.Record)
			}
			if err != nil {
				return &store.BatchError{Index: i, Err: err}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	return out, nil
}

func (s *Store) put(ctx context.Context, tx *sql.Tx, rec store.Record) error {
	res, err := s.txExec(ctx, tx,
		putSQL,
		rec.Collection, rec.Tenant, rec.ID, nonNil(rec.Body))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return store.ErrConflict
	}
	return s.insertIndex(ctx, tx, rec)
}

func (s *Store) update(ctx context.Context, tx *sql.Tx, rec store.Record) error {
	res, err := s.txExec(ctx, tx,
		updateSQL,
		nonNil(rec.Body), rec.Collection, rec.Tenant, rec.ID, rec.Version)
	if err != nil {
		return err
	}
	if err := s.casResult(ctx, tx, res, rec.Collection, rec.Tenant, rec.ID); err != nil {
		return err
	}
	return s.updateIndex(ctx, tx, rec)
}

// updateIndex makes the index rows of rec, an updated record, its Index:
// it reads the stored rows and writes only the fields that changed, came or
// went. An update usually changes a field or two of several, and each row
// written is two b-tree entries (the row and store_index_value).
func (s *Store) updateIndex(ctx context.Context, tx *sql.Tx, rec store.Record) error {
	rows, err := txQuery(ctx, tx, s.fixed[indexRowsSQL], indexRowsSQL, rec.Collection, rec.Tenant, rec.ID)
	if err != nil {
		return err
	}
	stored := make(map[string]string, len(rec.Index))
	for rows.Next() {
		var field, value string
		if err := rows.Scan(&field, &value); err != nil {
			_ = rows.Close()
			return err
		}
		stored[field] = value
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for field, value := range rec.Index {
		old, ok := stored[field]
		var err error
		switch {
		case !ok:
			_, err = s.txExec(ctx, tx, insertIndexSQL, rec.Collection, rec.Tenant, rec.ID, field, value)
		case old != value:
			_, err = s.txExec(ctx, tx, setIndexSQL, value, rec.Collection, rec.Tenant, rec.ID, field)
		}
		if err != nil {
			return err
		}
	}
	for field := range stored {
		if _, ok := rec.Index[field]; ok {
			continue
		}
		if _, err := s.txExec(ctx, tx, dropIndexSQL, rec.Collection, rec.Tenant, rec.ID, field); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) delete(ctx context.Context, tx *sql.Tx, rec store.Record) error {
	res, err := s.txExec(ctx, tx,
		deleteSQL,
		rec.Collection, rec.Tenant, rec.ID, rec.Version, rec.Version)
	if err != nil {
		return err
	}
	return s.casResult(ctx, tx, res, rec.Collection, rec.Tenant, rec.ID)
}

// Query returns one page of the records of q.Collection in q.Tenant that
// meet every condition, ordered by q.OrderBy (then id) or by id.
func (s *Store) Query(ctx context.Context, q store.Query) (store.Page, error) {
	if err := s.checkQuery(q); err != nil {
		return store.Page{}, fmt.Errorf("query: %w", err)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = store.DefaultLimit
	}
	limit = min(limit, store.MaxLimit)
	shape := queryShape(q)
	var after *cursor
	if q.Cursor != "" {
		c, err := decodeCursor(q.Cursor, shape)
		if err != nil {
			return store.Page{}, fmt.Errorf("query %s: %w", q.Collection, err)
		}
		after = &c
	}
	text, args := buildQuery(q, after, limit+1)
	// Prepare before the transaction holds a connection (see stmtCache.get).
	st, err := s.queries.get(ctx, s.db.DB, text)
	if err != nil {
		return store.Page{}, fmt.Errorf("query %s: prepare: %w", q.Collection, err)
	}

	var page store.Page
	err = s.read(ctx, func(tx *sql.Tx) error {
		page = store.Page{}
		rows, err := txQuery(ctx, tx, st, text, args...)
		if err != nil {
			return err
		}
		defer func() { _ = rows.Close() }()
		var last cursor
		for rows.Next() {
			if len(page.Records) == limit {
				page.Next = encodeCursor(shape, last)
				break
			}
			rec := store.Record{Collection: q.Collection, Tenant: q.Tenant}
			if err := rows.Scan(&rec.ID, &rec.Version, &rec.Body, &last.value); err != nil {
				return err
			}
			last.id = rec.ID
			page.Records = append(page.Records, rec)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if len(page.Records) == 0 {
			return nil
		}
		ids := make([]string, len(page.Records))
		for i, r := range page.Records {
			ids[i] = r.ID
		}
		idx, err := s.loadIndex(ctx, tx, q.Collection, q.Tenant, ids)
		if err != nil {
			return err
		}
		for i := range page.Records {
			page.Records[i].Index = idx[page.Records[i].ID]
		}
		return nil
	})
	if err != nil {
		return store.Page{}, fmt.Errorf("query %s: %w", q.Collection, err)
	}
	return page, nil
}

// ops maps each store.Op to its SQL operator; an Op not in it is invalid.
var ops = map[store.Op]string{
	store.Eq:  "=",
	store.Lt:  "<",
	store.Lte: "<=",
	store.Gt:  ">",
	store.Gte: ">=",
}

// buildQuery returns the SQL and arguments selecting (id, version, body,
// order value) of at most limit records of q after position after. The SQL
// holds only fixed fragments and generated aliases; every value is an
// argument.
func buildQuery(q store.Query, after *cursor, limit int) (string, []any) {
	var b strings.Builder
	var args []any
	dir, cmpOp := "ASC", ">"
	if q.Desc {
		dir, cmpOp = "DESC", "<"
	}
	base := "r"
	if q.OrderBy != "" {
		base = "o"
		b.WriteString(`SELECT r.id, r.version, r.body, o.value FROM store_index o
			JOIN store_records r ON r.collection = o.collection AND r.tenant = o.tenant AND r.id = o.id`)
	} else {
		b.WriteString(`SELECT r.id, r.version, r.body, '' FROM store_records r`)
	}
	// Aliases are numbered by join, not by condition, so the text does not
	// depend on where the conditions on OrderBy stand: fewer texts to
	// prepare.
	var onOrder []store.Cond
	i := 0
	for _, c := range q.Where {
		if c.Field == q.OrderBy {
			onOrder = append(onOrder, c)
			continue
		}
		fmt.Fprintf(&b, "\nJOIN store_index c%[1]d ON c%[1]d.collection = %[2]s.collection AND c%[1]d.tenant = %[2]s.tenant"+
			" AND c%[1]d.id = %[2]s.id AND c%[1]d.field = ? AND c%[1]d.value %[3]s ?", i, base, ops[c.Op])
		args = append(args, c.Field, c.Value)
		i++
	}
	fmt.Fprintf(&b, "\nWHERE %[1]s.collection = ? AND %[1]s.tenant = ?", base)
	args = append(args, q.Collection, q.Tenant)
	if q.OrderBy != "" {
		b.WriteString(" AND o.field = ?")
		args = append(args, q.OrderBy)
		for _, c := range onOrder {
			fmt.Fprintf(&b, " AND o.value %s ?", ops[c.Op])
			args = append(args, c.Value)
		}
		if after != nil {
			fmt.Fprintf(&b, " AND (o.value, o.id) %s (?, ?)", cmpOp)
			args = append(args, after.value, after.id)
		}
		fmt.Fprintf(&b, "\nORDER BY o.value %[1]s, o.id %[1]s", dir)
	} else {
		if after != nil {
			fmt.Fprintf(&b, " AND r.id %s ?", cmpOp)
			args = append(args, after.id)
		}
		fmt.Fprintf(&b, "\nORDER BY r.id %s", dir)
	}
	b.WriteString("\nLIMIT ?")
	args = append(args, limit)
	return b.String(), args
}

// loadIndex returns the index fields of the records ids of (collection,
// tenant), by id. A record without index fields gets an empty map. ids holds
// 1 to store.MaxLimit ids; they are padded with the last one to the next
// length of indexSizes, which changes no result.
func (s *Store) loadIndex(ctx context.Context, tx *sql.Tx, collection, tenant string, ids []string) (map[string]map[string]string, error) {
	k, _ := slices.BinarySearch(indexSizes, len(ids))
	if len(ids) == 0 || k == len(indexSizes) {
		return nil, fmt.Errorf("load index of %d records: not in 1..%d", len(ids), store.MaxLimit)
	}
	out := make(map[string]map[string]string, len(ids))
	n := 2 + indexSizes[k]
	args := make([]any, 0, n)
	args = append(args, collection, tenant)
	for _, id := range ids {
		out[id] = map[string]string{}
		args = append(args, id)
	}
	for len(args) < n {
		args = append(args, ids[len(ids)-1])
	}
	rows, err := tx.StmtContext(ctx, s.index[k]).QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var id, field, value string
		if err := rows.Scan(&id, &field, &value); err != nil {
			return nil, err
		}
		out[id][field] = value
	}
	return out, rows.Err()
}

// insertIndex writes the index rows of rec.
func (s *Store) insertIndex(ctx context.Context, tx *sql.Tx, rec store.Record) error {
	for field, value := range rec.Index {
		if _, err := s.txExec(ctx, tx,
			insertIndexSQL,
			rec.Collection, rec.Tenant, rec.ID, field, value); err != nil {
			return err
		}
	}
	return nil
}

// casResult turns a compare-and-swap statement that changed no row into
// store.ErrNotFound or store.ErrConflict, by whether the record exists.
func (s *Store) casResult(ctx context.Context, tx *sql.Tx, res sql.Result, collection, tenant, id string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	var one int
	err = tx.StmtContext(ctx, s.fixed[existsSQL]).QueryRowContext(ctx, collection, tenant, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	if err != nil {
		return err
	}
	return store.ErrConflict
}

// write runs fn in a write transaction of the database's writer, which may
// share it with other callers' writes (see sqlitedb.DB.Write): fn MUST run
// its statements with the ctx it is given.
func (s *Store) write(ctx context.Context, fn func(context.Context, *sql.Tx) error) error {
	return s.db.Write(ctx, fn)
}

// read runs fn in a read-only transaction, so all its statements see one
// snapshot.
func (s *Store) read(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// check validates a record's place and that the Store is open.
func (s *Store) check(collection, tenant, id string) error {
	if s.closed.Load() {
		return errClosed
	}
	if err := checkKey("collection", collection); err != nil {
		return err
	}
	if err := checkKey("tenant", tenant); err != nil {
		return err
	}
	return checkID(id)
}

func (s *Store) checkRecord(rec store.Record) error {
	if err := s.check(rec.Collection, rec.Tenant, rec.ID); err != nil {
		return err
	}
	for field := range rec.Index {
		if err := checkField(field); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) checkUpdate(rec store.Record) error {
	if err := s.checkRecord(rec); err != nil {
		return err
	}
	if rec.Version < 0 {
		return fmt.Errorf("negative version: %w", store.ErrInvalid)
	}
	return nil
}

func (s *Store) checkDelete(rec store.Record) error {
	if err := s.check(rec.Collection, rec.Tenant, rec.ID); err != nil {
		return err
	}
	if rec.Version < 0 {
		return fmt.Errorf("negative version: %w", store.ErrInvalid)
	}
	return nil
}

func (s *Store) checkQuery(q store.Query) error {
	if s.closed.Load() {
		return errClosed
	}
	if err := checkKey("collection", q.Collection); err != nil {
		return err
	}
	if err := checkKey("tenant", q.Tenant); err != nil {
		return err
	}
	if q.OrderBy != "" {
		if err := checkField(q.OrderBy); err != nil {
			return err
		}
	}
	for _, c := range q.Where {
		if err := checkField(c.Field); err != nil {
			return err
		}
		if _, ok := ops[c.Op]; !ok {
			return fmt.Errorf("unknown operator %q: %w", c.Op, store.ErrInvalid)
		}
	}
	return nil
}

func checkID(id string) error { return checkKey("id", id) }

func checkKey(what, v string) error {
	if v == "" {
		return fmt.Errorf("empty %s: %w", what, store.ErrInvalid)
	}
	if len(v) > store.MaxKeyLen {
		return fmt.Errorf("%s longer than %d bytes: %w", what, store.MaxKeyLen, store.ErrInvalid)
	}
	return nil
}

// checkField reports whether name is a valid index field name: 1 to 64
// characters of [A-Za-z0-9_.].
func checkField(name string) error {
	if name == "" || len(name) > store.MaxFieldLen {
		return fmt.Errorf("index field name %q: length not in 1..%d: %w", name, store.MaxFieldLen, store.ErrInvalid)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.') {
			return fmt.Errorf("index field name %q: character %q not in [A-Za-z0-9_.]: %w", name, r, store.ErrInvalid)
		}
	}
	return nil
}
