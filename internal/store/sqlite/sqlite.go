// Package sqlite is the embedded store.Backend: records kept in the SQLite
// database that the embedded queue shares (see package sqlitedb).
//
// # Schema
//
// Two tables, created by the embedded migrations of component "store":
//
//	store_records (collection, tenant, id, version, body BLOB, fields TEXT)
//	    PRIMARY KEY (collection, tenant, id)
//	store_fields  (collection, tenant, field, value, id)
//	    PRIMARY KEY (collection, tenant, field, value, id) WITHOUT ROWID
//
// A record's declared index fields are held twice, written together: in
// its row, as fields, a JSON object of strings, which Get and Query return
// as the record's Index; and as one store_fields row each, the only index
// b-tree. Triggers on store_records (migration 0002) keep store_fields
// equal to the records' fields, in the statement that writes the record:
// a Put, Update or Delete is one statement, which writes only the
// store_fields rows of fields that came, went or changed. A query ordered by a field walks store_fields for that field, a
// query ordered by id the primary key of store_records. A condition of
// equality joins the store_fields row it names; a condition of order on
// another field than the ordering one reads the field from the record's
// fields (json_extract), so that no condition makes a lookup scan a range
// of values. Every value — collection, tenant, id, field names, JSON paths,
// index values, versions and bodies — is bound as a statement parameter; the
// SQL text is built only from fixed fragments.
//
// Put, Update and Delete each run in one IMMEDIATE write transaction, so a
// record's body, index and version change together or not at all. Get
// reads one row and Query runs one statement, so a record's body and index
// always come from the same snapshot.
//
// # Prepared statements
//
// Compiling SQL text took a fifth of the CPU of a Query page, so no call
// compiles its SQL anew in the steady state. New prepares the fixed texts,
// Get's and the writes'. Query prepares its generated text on first use
// and keeps it, up to maxCachedQueries texts; a text beyond that runs
// unprepared. Every statement is prepared on the pool (db.PrepareContext)
// before a transaction opens, never while one is held, and runs in the
// transaction through tx.StmtContext, which prepares it again, at most once
// per connection, on the transaction's own connection: a caller holding a
// connection — a writer holding the write lock above all — never waits
// for the pool to give it another one, which callers waiting on it may hold.
//
// Index field names are 1 to 64 characters of [A-Za-z0-9_.]; index values
// are valid UTF-8; collection, tenant and id are 1 to 256 bytes. Anything
// else fails with store.ErrInvalid.
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
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

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
	// queries caches the prepared statements of Query's generated texts.
	queries stmtCache
}

const getSQL = `SELECT version, body, fields FROM store_records WHERE collection = ? AND tenant = ? AND id = ?`

// The statements of writes, prepared when the Store is made (see txExec).
// The triggers of store_records write store_fields.
const (
	putSQL    = `INSERT INTO store_records (collection, tenant, id, version, body, fields) VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT DO NOTHING`
	updateSQL = `UPDATE store_records SET version = version + 1, body = ?, fields = ? WHERE collection = ? AND tenant = ? AND id = ? AND version = ?`
	deleteSQL = `DELETE FROM store_records WHERE collection = ? AND tenant = ? AND id = ? AND (? = 0 OR version = ?)`
)

// existsSQL tells a compare-and-swap that changed no row whether the record
// exists (see casResult).
const existsSQL = `SELECT 1 FROM store_records WHERE collection = ? AND tenant = ? AND id = ?`

// fixedStatements lists the texts New prepares into Store.fixed.
var fixedStatements = []string{getSQL, putSQL, updateSQL, deleteSQL, existsSQL}

var _ store.Backend = (*Store)(nil)

// New applies the store's migrations to db and returns a Store over it.
// The caller keeps ownership of db and closes it after closing the Store.
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

// get reads the record's row: version, body and index fields.
func (s *Store) get(ctx context.Context, collection, tenant, id string) (store.Record, error) {
	rec := store.Record{Collection: collection, Tenant: tenant, ID: id}
	var fields string
	err := s.fixed[getSQL].QueryRowContext(ctx, collection, tenant, id).Scan(&rec.Version, &rec.Body, &fields)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Record{}, store.ErrNotFound
	}
	if err != nil {
		return store.Record{}, err
	}
	if rec.Index, err = decodeFields(fields); err != nil {
		return store.Record{}, err
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
// a version mismatch. Its index goes with it.
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
	fields, err := encodeFields(rec.Index)
	if err != nil {
		return err
	}
	res, err := s.txExec(ctx, tx,
		putSQL,
		rec.Collection, rec.Tenant, rec.ID, nonNil(rec.Body), fields)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return store.ErrConflict
	}
	return nil
}

func (s *Store) update(ctx context.Context, tx *sql.Tx, rec store.Record) error {
	fields, err := encodeFields(rec.Index)
	if err != nil {
		return err
	}
	res, err := s.txExec(ctx, tx,
		updateSQL,
		nonNil(rec.Body), fields, rec.Collection, rec.Tenant, rec.ID, rec.Version)
	if err != nil {
		return err
	}
	return s.casResult(ctx, tx, res, rec.Collection, rec.Tenant, rec.ID)
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

// casResult turns a compare-and-swap statement that changed no row into
// store.ErrNotFound or store.ErrConflict, by whether the record exists.
// RowsAffected counts the record's row only, not what its triggers wrote.
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

// encodeFields returns index as the JSON object a record's row holds.
func encodeFields(index map[string]string) (string, error) {
	if len(index) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(index)
	if err != nil {
		return "", fmt.Errorf("encode index: %w", err)
	}
	return string(b), nil
}

// decodeFields reads the JSON object of a record's row into an index map,
// empty and not nil when the record has no index fields.
func decodeFields(fields string) (map[string]string, error) {
	index := map[string]string{}
	if fields == "{}" {
		return index, nil
	}
	if err := json.Unmarshal([]byte(fields), &index); err != nil {
		return nil, fmt.Errorf("stored index fields: %w", err)
	}
	return index, nil
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
	st, err := s.queries.get(ctx, s.db.DB, text)
	if err != nil {
		return store.Page{}, fmt.Errorf("query %s: prepare: %w", q.Collection, err)
	}
	// One statement reads one snapshot: no transaction is needed.
	var rows *sql.Rows
	if st != nil {
		rows, err = st.QueryContext(ctx, args...)
	} else {
		rows, err = s.db.QueryContext(ctx, text, args...)
	}
	if err != nil {
		return store.Page{}, fmt.Errorf("query %s: %w", q.Collection, err)
	}
	defer func() { _ = rows.Close() }()
	var page store.Page
	var last cursor
	for rows.Next() {
		if len(page.Records) == limit {
			page.Next = encodeCursor(shape, last)
			break
		}
		rec := store.Record{Collection: q.Collection, Tenant: q.Tenant}
		var fields string
		if err := rows.Scan(&rec.ID, &rec.Version, &rec.Body, &fields, &last.value); err != nil {
			return store.Page{}, fmt.Errorf("query %s: %w", q.Collection, err)
		}
		if rec.Index, err = decodeFields(fields); err != nil {
			return store.Page{}, fmt.Errorf("query %s: %w", q.Collection, err)
		}
		last.id = rec.ID
		page.Records = append(page.Records, rec)
	}
	if err := rows.Err(); err != nil {
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
// fields, order value) of at most limit records of q after position after.
// The SQL holds only fixed fragments and generated aliases; every value is
// an argument.
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
		b.WriteString(`SELECT r.id, r.version, r.body, r.fields, o.value FROM store_fields o
			JOIN store_records r ON r.collection = o.collection AND r.tenant = o.tenant AND r.id = o.id`)
	} else {
		b.WriteString(`SELECT r.id, r.version, r.body, r.fields, '' FROM store_records r`)
	}
	// A condition of equality joins its store_fields row, a point lookup
	// that may also lead the query; a condition of order reads the record's
	// fields, as a lookup of (field, id) in store_fields would scan the
	// field's values. Aliases are numbered by join, not by condition, so
	// the text does not depend on where the conditions on OrderBy stand:
	// fewer texts to prepare.
	var onOrder, ranges []store.Cond
	i := 0
	for _, c := range q.Where {
		switch {
		case c.Field == q.OrderBy:
			onOrder = append(onOrder, c)
		case c.Op != store.Eq:
			ranges = append(ranges, c)
		default:
			fmt.Fprintf(&b, "\nJOIN store_fields c%[1]d ON c%[1]d.collection = %[2]s.collection AND c%[1]d.tenant = %[2]s.tenant"+
				" AND c%[1]d.field = ? AND c%[1]d.value = ? AND c%[1]d.id = %[2]s.id", i, base)
			args = append(args, c.Field, c.Value)
			i++
		}
	}
	fmt.Fprintf(&b, "\nWHERE %[1]s.collection = ? AND %[1]s.tenant = ?", base)
	args = append(args, q.Collection, q.Tenant)
	for _, c := range ranges {
		fmt.Fprintf(&b, " AND json_extract(r.fields, ?) %s ?", ops[c.Op])
		args = append(args, fieldPath(c.Field), c.Value)
	}
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

// fieldPath returns the JSON path of an index field in a record's fields.
// Field names are [A-Za-z0-9_.] (checkField), so quoting keeps a dot in a
// name from reading as a step of the path.
func fieldPath(field string) string { return `$."` + field + `"` }

// write runs fn in a write transaction of the database's writer, which may
// share it with other callers' writes (see sqlitedb.DB.Write): fn MUST run
// its statements with the ctx it is given.
func (s *Store) write(ctx context.Context, fn func(context.Context, *sql.Tx) error) error {
	return s.db.Write(ctx, fn)
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
	for field, value := range rec.Index {
		if err := checkField(field); err != nil {
			return err
		}
		if !utf8.ValidString(value) {
			return fmt.Errorf("index field %q: value is not valid UTF-8: %w", field, store.ErrInvalid)
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
