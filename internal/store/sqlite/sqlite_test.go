package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/idvault/idvault/internal/sqlitedb"
	"github.com/idvault/idvault/internal/store"
	"github.com/idvault/idvault/internal/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openDB opens a fresh database file in a temporary directory, closed when
// tb ends.
func openDB(tb testing.TB, path string) *sqlitedb.DB {
	tb.Helper()
	db, err := sqlitedb.Open(context.Background(), path)
	if err != nil {
		tb.Fatalf("sqlitedb.Open(%s) = %v, want nil", path, err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("db.Close() = %v, want nil", err)
		}
	})
	return db
}

func newStore(tb testing.TB, db *sqlitedb.DB) *Store {
	tb.Helper()
	s, err := New(context.Background(), db)
	if err != nil {
		tb.Fatalf("New() = %v, want nil", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend {
		return newStore(t, openDB(t, filepath.Join(t.TempDir(), "idvault.db")))
	})
}

func BenchmarkStore(b *testing.B) {
	storetest.Benchmark(b, func(b *testing.B) store.Backend {
		return newStore(b, openDB(b, filepath.Join(b.TempDir(), "idvault.db")))
	})
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "idvault.db")
	want := store.Record{Collection: "sessions", Tenant: "t1", ID: "s1", Version: 2,
		Index: map[string]string{"status": "done"}, Body: []byte("sealed\x00body")}

	db, err := sqlitedb.Open(ctx, path)
	if err != nil {
		t.Fatalf("sqlitedb.Open() = %v, want nil", err)
	}
	s := newStore(t, db)
	rec, err := s.Put(ctx, store.Record{Collection: want.Collection, Tenant: want.Tenant, ID: want.ID,
		Index: map[string]string{"status": "open"}, Body: []byte("first")})
	if err != nil {
		t.Fatalf("Put() = %v, want nil", err)
	}
	rec.Index, rec.Body = want.Index, want.Body
	if _, err := s.Update(ctx, rec); err != nil {
		t.Fatalf("Update() = %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("db.Close() = %v, want nil", err)
	}

	for round := range 2 {
		db := openDB(t, path)
		s := newStore(t, db)
		got, err := s.Get(ctx, want.Collection, want.Tenant, want.ID)
		if err != nil {
			t.Fatalf("round %d: Get() = %v, want nil", round, err)
		}
		if got.Version != want.Version || string(got.Body) != string(want.Body) || got.Index["status"] != "done" || len(got.Index) != 1 {
			t.Errorf("round %d: Get() = %+v, want %+v", round, got, want)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE component = 'store'`).Scan(&n); err != nil {
			t.Fatalf("count migrations: %v", err)
		}
		if n != 1 {
			t.Errorf("round %d: store migrations recorded = %d, want 1", round, n)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close() = %v, want nil", err)
		}
		// New on a database that already has the schema is a no-op.
		newStore(t, db)
	}
}

func TestCloseKeepsDB(t *testing.T) {
	ctx := t.Context()
	db := openDB(t, filepath.Join(t.TempDir(), "idvault.db"))
	s := newStore(t, db)
	for range 2 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close() = %v, want nil", err)
		}
	}
	if err := db.PingContext(ctx); err != nil {
		t.Errorf("db.Ping() after Store.Close = %v, want nil (the caller owns the db)", err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"Ping", func() error { return s.Ping(ctx) }},
		{"Get", func() error { _, err := s.Get(ctx, "c", "t", "i"); return err }},
		{"Put", func() error { _, err := s.Put(ctx, store.Record{Collection: "c", Tenant: "t", ID: "i"}); return err }},
		{"Update", func() error {
			_, err := s.Update(ctx, store.Record{Collection: "c", Tenant: "t", ID: "i", Version: 1})
			return err
		}},
		{"Delete", func() error { return s.Delete(ctx, "c", "t", "i", 0) }},
		{"Query", func() error { _, err := s.Query(ctx, store.Query{Collection: "c", Tenant: "t"}); return err }},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, errClosed) {
			t.Errorf("%s() after Close = %v, want %v", c.name, err, errClosed)
		}
	}
}

func TestNewRejectsNilDB(t *testing.T) {
	if _, err := New(t.Context(), nil); err == nil {
		t.Errorf("New(nil) = nil error, want an error")
	}
}

// TestDeleteRemovesIndexRows checks that no index row outlives its record,
// by counting rows in the raw table.
func TestDeleteRemovesIndexRows(t *testing.T) {
	ctx := t.Context()
	db := openDB(t, filepath.Join(t.TempDir(), "idvault.db"))
	s := newStore(t, db)
	for _, id := range []string{"a", "b"} {
		if _, err := s.Put(ctx, store.Record{Collection: "c", Tenant: "t", ID: id,
			Index: map[string]string{"x": "1", "y": "2", "z": "3"}}); err != nil {
			t.Fatalf("Put(%s) = %v, want nil", id, err)
		}
	}
	if err := s.Delete(ctx, "c", "t", "a", 0); err != nil {
		t.Fatalf("Delete(a) = %v, want nil", err)
	}
	rec, err := s.Get(ctx, "c", "t", "b")
	if err != nil {
		t.Fatalf("Get(b) = %v, want nil", err)
	}
	rec.Index = map[string]string{"x": "9"}
	if _, err := s.Update(ctx, rec); err != nil {
		t.Fatalf("Update(b) = %v, want nil", err)
	}
	var rows int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM store_index`).Scan(&rows); err != nil {
		t.Fatalf("count index rows: %v", err)
	}
	if rows != 1 {
		t.Errorf("index rows = %d, want 1", rows)
	}
}

// TestForeignCursorRejected is stricter than the conformance suite: this
// backend rejects every cursor of another query with store.ErrInvalid.
func TestForeignCursorRejected(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, openDB(t, filepath.Join(t.TempDir(), "idvault.db")))
	for _, tenant := range []string{"t1", "t2"} {
		for _, id := range []string{"a", "b", "c"} {
			if _, err := s.Put(ctx, store.Record{Collection: "c", Tenant: tenant, ID: id, Index: map[string]string{"k": id}}); err != nil {
				t.Fatalf("Put(%s/%s) = %v, want nil", tenant, id, err)
			}
		}
	}
	from := store.Query{Collection: "c", Tenant: "t1", OrderBy: "k", Limit: 1,
		Where: []store.Cond{{Field: "k", Op: store.Gte, Value: "a"}, {Field: "k", Op: store.Lt, Value: "z"}}}
	page, err := s.Query(ctx, from)
	if err != nil || page.Next == "" {
		t.Fatalf("Query(limit 1) = next %q, %v; want a cursor", page.Next, err)
	}
	t.Run("same query in another condition order", func(t *testing.T) {
		q := from
		q.Where = []store.Cond{from.Where[1], from.Where[0]}
		q.Cursor = page.Next
		got, err := s.Query(ctx, q)
		if err != nil || len(got.Records) != 1 || got.Records[0].ID != "b" {
			t.Errorf("Query(reordered conditions) = %v, %v; want [b]", got.Records, err)
		}
	})
	t.Run("same query with another limit", func(t *testing.T) {
		q := from
		q.Limit = 10
		q.Cursor = page.Next
		got, err := s.Query(ctx, q)
		if err != nil || len(got.Records) != 2 {
			t.Errorf("Query(limit 10) = %v, %v; want [b c]", got.Records, err)
		}
	})
	changes := []struct {
		name   string
		change func(*store.Query)
	}{
		{"tenant", func(q *store.Query) { q.Tenant = "t2" }},
		{"collection", func(q *store.Query) { q.Collection = "d" }},
		{"order", func(q *store.Query) { q.OrderBy = "" }},
		{"direction", func(q *store.Query) { q.Desc = true }},
		{"condition value", func(q *store.Query) { q.Where = []store.Cond{from.Where[0], {Field: "k", Op: store.Lt, Value: "y"}} }},
		{"condition dropped", func(q *store.Query) { q.Where = from.Where[:1] }},
	}
	for _, c := range changes {
		t.Run("other "+c.name, func(t *testing.T) {
			q := from
			c.change(&q)
			q.Cursor = page.Next
			if _, err := s.Query(ctx, q); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("Query(cursor of another %s) = %v, want %v", c.name, err, store.ErrInvalid)
			}
		})
	}
}

// TestWritersOutnumberConnections runs more concurrent writers than the pool
// has connections — one — on a fresh store: a writer holding the write lock
// must finish on its own connection, never wait for another one (which the
// writers waiting for the lock hold). Every write must succeed in time.
func TestWritersOutnumberConnections(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "idvault.db"))
	db.SetMaxOpenConns(1)
	s := newStore(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const writers = 16
	errs := make(chan error, writers)
	for i := range writers {
		go func() {
			id := fmt.Sprint("r", i)
			_, err := s.Apply(ctx, []store.Write{
				{Op: store.OpPut, Record: store.Record{Collection: "c", Tenant: "t", ID: id, Index: map[string]string{"k": "v"}, Body: []byte("b")}},
				{Op: store.OpUpdate, Record: store.Record{Collection: "c", Tenant: "t", ID: id, Version: 1, Index: map[string]string{"k": "w"}, Body: []byte("b2")}},
			})
			errs <- err
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Errorf("Apply() = %v, want nil", err)
		}
	}
}

// TestQueryCacheBounded runs more query texts than the statement cache
// keeps: every query, prepared or not, returns the right records; the cache
// stops at maxCachedQueries; Close closes every cached statement and caches
// no more.
func TestQueryCacheBounded(t *testing.T) {
	ctx := t.Context()
	db := openDB(t, filepath.Join(t.TempDir(), "idvault.db"))
	s := newStore(t, db)
	const n = 5
	for i := range n {
		v := fmt.Sprint("v", i)
		if _, err := s.Put(ctx, store.Record{Collection: "c", Tenant: "t", ID: fmt.Sprint("r", i),
			Index: map[string]string{"f0": v, "f1": v, "f2": v, "o": fmt.Sprint("v", n-1-i)}}); err != nil {
			t.Fatalf("Put(r%d) = %v, want nil", i, err)
		}
	}
	holds := func(op store.Op, a, b string) bool {
		switch op {
		case store.Eq:
			return a == b
		case store.Lt:
			return a < b
		case store.Lte:
			return a <= b
		case store.Gt:
			return a > b
		default:
			return a >= b
		}
	}
	allOps := []store.Op{store.Eq, store.Lt, store.Lte, store.Gt, store.Gte}
	var queries []store.Query
	for _, orderBy := range []string{"", "o"} {
		for _, desc := range []bool{false, true} {
			for _, op0 := range allOps {
				for _, op1 := range allOps {
					for _, op2 := range allOps {
						queries = append(queries, store.Query{Collection: "c", Tenant: "t", OrderBy: orderBy, Desc: desc, Limit: 10,
							Where: []store.Cond{{Field: "f0", Op: op0, Value: "v2"}, {Field: "f1", Op: op1, Value: "v2"}, {Field: "f2", Op: op2, Value: "v2"}}})
					}
				}
			}
		}
	}
	texts := map[string][]any{}
	for _, q := range queries {
		text, args := buildQuery(q, nil, q.Limit+1)
		texts[text] = args
		// Records ascend by id and descend by o: ordered by o ascending
		// is by id descending.
		var want []string
		for i := range n {
			v := fmt.Sprint("v", i)
			if holds(q.Where[0].Op, v, "v2") && holds(q.Where[1].Op, v, "v2") && holds(q.Where[2].Op, v, "v2") {
				want = append(want, fmt.Sprint("r", i))
			}
		}
		if q.Desc != (q.OrderBy == "o") {
			slices.Reverse(want)
		}
		page, err := s.Query(ctx, q)
		if err != nil {
			t.Fatalf("Query(%+v) = %v, want nil", q, err)
		}
		var got []string
		for _, r := range page.Records {
			got = append(got, r.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Query(%+v) = %v, want %v", q, got, want)
		}
	}
	if len(texts) <= maxCachedQueries {
		t.Fatalf("ran %d query texts, want more than %d", len(texts), maxCachedQueries)
	}
	cached := map[*sql.Stmt][]any{}
	s.queries.mu.Lock()
	for text, st := range s.queries.stmts {
		cached[st] = texts[text]
	}
	s.queries.mu.Unlock()
	if len(cached) != maxCachedQueries {
		t.Errorf("cached statements = %d, want %d", len(cached), maxCachedQueries)
	}
	run := func(st *sql.Stmt, args []any) error {
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		return rows.Close()
	}
	for st, args := range cached {
		if err := run(st, args); err != nil {
			t.Fatalf("cached statement before Close: Query() = %v, want nil", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}
	for st, args := range cached {
		if err := run(st, args); err == nil {
			t.Fatalf("cached statement after Close: Query() = nil error, want an error (statement closed)")
		}
	}
	text := slices.Collect(maps.Keys(texts))[0]
	if st, err := s.queries.get(ctx, db.DB, text); st != nil || err != nil {
		t.Errorf("stmtCache.get after close = %v, %v; want nil, nil", st, err)
	}
	if s.queries.stmts != nil {
		t.Errorf("cached statements after Close = %d, want none", len(s.queries.stmts))
	}
}

// TestReadersOutnumberConnections runs concurrent queries of new texts
// (each prepared on first use), reads and writes on a pool of two
// connections, one of which the writer keeps: no caller holding a
// connection may wait for another one. Every call must succeed in time.
func TestReadersOutnumberConnections(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "idvault.db"))
	db.SetMaxOpenConns(2)
	s := newStore(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const workers = 16
	allOps := []store.Op{store.Eq, store.Lt, store.Lte, store.Gt, store.Gte}
	errs := make(chan error, workers)
	for i := range workers {
		go func() {
			errs <- func() error {
				id := fmt.Sprint("r", i)
				rec, err := s.Put(ctx, store.Record{Collection: "c", Tenant: "t", ID: id, Index: map[string]string{"k": id, "o": id}})
				if err != nil {
					return err
				}
				for j, op := range allOps {
					// A text depends on the direction and second
					// operator (by worker) and the first operator (by
					// step): 50 texts, some shared by workers, each
					// prepared while other workers hold the connection.
					q := store.Query{Collection: "c", Tenant: "t", OrderBy: "o", Desc: i%2 == 1, Limit: 1 + j,
						Where: []store.Cond{{Field: "k", Op: op, Value: id}, {Field: "k", Op: allOps[(i/2)%len(allOps)], Value: id}}}
					if _, err := s.Query(ctx, q); err != nil {
						return err
					}
					if _, err := s.Get(ctx, "c", "t", id); err != nil {
						return err
					}
					if rec, err = s.Update(ctx, rec); err != nil {
						return err
					}
				}
				return nil
			}()
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Errorf("worker: %v, want nil", err)
		}
	}
}

// TestCloseDuringQueries closes the Store while queries of new texts
// prepare their statements: calls may fail, but none may leave a statement
// in the cache.
func TestCloseDuringQueries(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, openDB(t, filepath.Join(t.TempDir(), "idvault.db")))
	const workers = 8
	start := make(chan struct{})
	done := make(chan struct{}, workers)
	for i := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			<-start
			for j := range 20 {
				// The texts differ by number of conditions and
				// direction, so most are prepared while Close runs.
				q := store.Query{Collection: "c", Tenant: fmt.Sprint("t", i)}
				for range j % 8 {
					q.Where = append(q.Where, store.Cond{Field: "k", Op: store.Eq, Value: "v"})
				}
				q.Desc = j >= 8
				_, _ = s.Query(ctx, q)
			}
		}()
	}
	close(start)
	if err := s.Close(); err != nil {
		t.Errorf("Close() = %v, want nil", err)
	}
	for range workers {
		<-done
	}
	s.queries.mu.Lock()
	defer s.queries.mu.Unlock()
	if len(s.queries.stmts) != 0 {
		t.Errorf("cached statements after Close = %d, want none", len(s.queries.stmts))
	}
}

// fieldRows returns every store_index row as collection/tenant/field=value/id.
func fieldRows(t *testing.T, db *sqlitedb.DB) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT collection, tenant, field, value, id FROM store_index`)
	if err != nil {
		t.Fatalf("read index rows: %v", err)
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var c, tenant, f, v, id string
		if err := rows.Scan(&c, &tenant, &f, &v, &id); err != nil {
			t.Fatalf("read index rows: %v", err)
		}
		out = append(out, c+"/"+tenant+"/"+f+"="+v+"/"+id)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read index rows: %v", err)
	}
	slices.Sort(out)
	return out
}

// TestIndexRowsFollowRecords makes random puts, updates (index fields
// changed, added, dropped or kept; stale ones refused) and deletes, and
// checks after each that store_index holds exactly one row per index field
// of each record.
func TestIndexRowsFollowRecords(t *testing.T) {
	ctx := t.Context()
	db := openDB(t, filepath.Join(t.TempDir(), "idvault.db"))
	s := newStore(t, db)
	rng := rand.New(rand.NewPCG(1, 2))
	values := []string{"a", "b", "", `q"uote`, "é", "2026-11-29T10:00:00.000000000Z"}
	fields := []string{"status", "x", "a.b", "updatedAt"}
	randomIndex := func() map[string]string {
		idx := map[string]string{}
		for _, f := range fields {
			if rng.IntN(2) == 0 {
				idx[f] = values[rng.IntN(len(values))]
			}
		}
		return idx
	}
	want := map[string]store.Record{} // by tenant/id
	for step := range 400 {
		tenant, id := fmt.Sprintf("t%d", rng.IntN(2)), fmt.Sprintf("r%d", rng.IntN(12))
		key := tenant + "/" + id
		cur, exists := want[key]
		switch op := rng.IntN(4); {
		case !exists:
			rec, err := s.Put(ctx, store.Record{Collection: "c", Tenant: tenant, ID: id, Index: randomIndex(), Body: []byte{byte(step)}})
			if err != nil {
				t.Fatalf("step %d: Put(%s) = %v", step, key, err)
			}
			want[key] = rec
		case op == 0:
			if err := s.Delete(ctx, "c", tenant, id, cur.Version); err != nil {
				t.Fatalf("step %d: Delete(%s) = %v", step, key, err)
			}
			delete(want, key)
		case op == 1:
			// A stale update changes nothing.
			stale := cur
			stale.Version--
			stale.Index = randomIndex()
			if _, err := s.Update(ctx, stale); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("step %d: stale Update(%s) = %v, want ErrConflict", step, key, err)
			}
		default:
			cur.Index = randomIndex()
			if rng.IntN(3) == 0 {
				cur.Index = maps.Clone(want[key].Index)
			}
			recs, err := s.Apply(ctx, []store.Write{{Op: store.OpUpdate, Record: cur}})
			if err != nil {
				t.Fatalf("step %d: Apply(update %s) = %v", step, key, err)
			}
			want[key] = recs[0]
		}
		var rows []string
		for _, rec := range want {
			for f, v := range rec.Index {
				rows = append(rows, "c/"+rec.Tenant+"/"+f+"="+v+"/"+rec.ID)
			}
		}
		slices.Sort(rows)
		if got := fieldRows(t, db); !slices.Equal(got, rows) {
			t.Fatalf("step %d: index rows = %q, want %q", step, got, rows)
		}
	}
}
