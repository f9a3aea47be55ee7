// Package storetest is the conformance suite that every store.Backend runs
// (SQLite on every go test, MongoDB when its server is configured), and the
// shared benchmarks.
//
// A backend package calls Run from a test and Benchmark from a benchmark:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Backend { return newTestStore(t) })
//	}
//
//	func BenchmarkStore(b *testing.B) {
//		storetest.Benchmark(b, func(b *testing.B) store.Backend { return newTestStore(b) })
//	}
//
// newBackend MUST return an empty backend for every call; the suite closes it
// when the test ends, and newBackend registers with t.Cleanup whatever else
// must be released after that (the database, a server connection).
//
// Beyond the contract written in package store, the suite pins down these
// rules so that backends behave alike:
//   - A Query with Limit <= 0 returns store.DefaultLimit records per page; a Limit
//     above store.MaxLimit returns at most store.MaxLimit.
//   - A descending order breaks ties by id descending: a descending query
//     returns exactly the reverse of the ascending one.
//   - An index field name is 1 to store.MaxFieldLen characters of [A-Za-z0-9_.];
//     collection, tenant and id are 1 to store.MaxKeyLen bytes. Anything else,
//     an unknown Op, and a malformed cursor fail with store.ErrInvalid.
//   - A cursor presented with a query other than the one it came from fails
//     with store.ErrInvalid, or at least returns only records of the query's
//     own collection and tenant.
//   - An empty body and an empty index round-trip as empty (nil or zero
//     length); an index value may be the empty string, which is present and
//     sorts first.
package storetest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/idvault/idvault/internal/store"
)

// Run runs the conformance suite against backends made by newBackend, each
// subtest on a fresh one.
func Run(t *testing.T, newBackend func(t *testing.T) store.Backend) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Backend)
	}{
		{"PutGet", testPutGet},
		{"PutExisting", testPutExisting},
		{"GetAbsent", testGetAbsent},
		{"Update", testUpdate},
		{"UpdateStale", testUpdateStale},
		{"UpdateAbsent", testUpdateAbsent},
		{"Delete", testDelete},
		{"DeleteThenPut", testDeleteThenPut},
		{"TenantIsolation", testTenantIsolation},
		{"CollectionIsolation", testCollectionIsolation},
		{"Query", testQuery},
		{"QueryLimit", testQueryLimit},
		{"QueryBadCursor", testQueryBadCursor},
		{"QueryForeignCursor", testQueryForeignCursor},
		{"Invalid", testInvalid},
		{"ConcurrentCAS", testConcurrentCAS},
		{"AtomicReads", testAtomicReads},
		{"Bodies", testBodies},
		{"CanceledContext", testCanceledContext},
		{"Ping", testPing},
		{"Apply", testApply},
		{"ApplyAtomic", testApplyAtomic},
		{"ApplyInvalid", testApplyInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t, newBackend))
		})
	}
}

func open[T testing.TB](t T, newBackend func(T) store.Backend) store.Backend {
	b := newBackend(t)
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close() = %v, want nil", err)
		}
	})
	return b
}

const (
	coll    = "items"
	tenantA = "tenant-a"
	tenantB = "tenant-b"
)

func mustPut(t testing.TB, b store.Backend, rec store.Record) store.Record {
	t.Helper()
	got, err := b.Put(context.Background(), rec)
	if err != nil {
		t.Fatalf("Put(%s/%s/%s) = %v, want nil", rec.Collection, rec.Tenant, rec.ID, err)
	}
	return got
}

func mustGet(t testing.TB, b store.Backend, collection, tenant, id string) store.Record {
	t.Helper()
	got, err := b.Get(context.Background(), collection, tenant, id)
	if err != nil {
		t.Fatalf("Get(%s, %s, %s) = %v, want nil", collection, tenant, id, err)
	}
	return got
}

// diff describes how got differs from want, or returns "" if they are equal.
// Nil and empty bodies and indexes are equal.
func diff(got, want store.Record) string {
	var d []string
	if got.Collection != want.Collection || got.Tenant != want.Tenant || got.ID != want.ID {
		d = append(d, fmt.Sprintf("place %s/%s/%s, want %s/%s/%s",
			got.Collection, got.Tenant, got.ID, want.Collection, want.Tenant, want.ID))
	}
	if got.Version != want.Version {
		d = append(d, fmt.Sprintf("version %d, want %d", got.Version, want.Version))
	}
	if !maps.Equal(got.Index, want.Index) {
		d = append(d, fmt.Sprintf("index %v, want %v", got.Index, want.Index))
	}
	if !bytes.Equal(got.Body, want.Body) {
		d = append(d, fmt.Sprintf("body %s, want %s", short(got.Body), short(want.Body)))
	}
	return strings.Join(d, "; ")
}

func short(b []byte) string {
	if len(b) > 32 {
		return fmt.Sprintf("%q…(%d bytes)", b[:32], len(b))
	}
	return fmt.Sprintf("%q", b)
}

func checkRecord(t testing.TB, b store.Backend, want store.Record) {
	t.Helper()
	got := mustGet(t, b, want.Collection, want.Tenant, want.ID)
	if d := diff(got, want); d != "" {
		t.Errorf("Get(%s, %s, %s): %s", want.Collection, want.Tenant, want.ID, d)
	}
}

func testPutGet(t *testing.T, b store.Backend) {
	tests := []struct {
		name string
		rec  store.Record
	}{
		{"index and body", store.Record{Collection: coll, Tenant: tenantA, ID: "r1",
			Index: map[string]string{"status": "open", "created": "2024-01-02T03:04:05Z", "wf.id": "w_1"},
			Body:  []byte("sealed body 1")}},
		{"no index", store.Record{Collection: coll, Tenant: tenantA, ID: "r2", Body: []byte("sealed body 2")}},
		{"empty index value", store.Record{Collection: coll, Tenant: tenantA, ID: "r3",
			Index: map[string]string{"status": ""}, Body: []byte("b")}},
		{"odd values", store.Record{Collection: coll, Tenant: tenantA, ID: "id with spaces/'quotes\";--",
			Index: map[string]string{"v": "'; DROP TABLE x; --", "u": "ünïcødé ✓"}, Body: []byte("c")}},
		{"version ignored", store.Record{Collection: coll, Tenant: tenantA, ID: "r4", Version: 7, Body: []byte("d")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.rec
			want.Version = 1
			got := mustPut(t, b, tt.rec)
			if d := diff(got, want); d != "" {
				t.Errorf("Put(%s) returned %s", tt.rec.ID, d)
			}
			checkRecord(t, b, want)
		})
	}
}

func testPutExisting(t *testing.T, b store.Backend) {
	ctx := t.Context()
	orig := store.Record{Collection: coll, Tenant: tenantA, ID: "r1", Index: map[string]string{"status": "open"}, Body: []byte("one")}
	mustPut(t, b, orig)
	_, err := b.Put(ctx, store.Record{Collection: coll, Tenant: tenantA, ID: "r1", Index: map[string]string{"other": "x"}, Body: []byte("two")})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Put(existing) = %v, want %v", err, store.ErrConflict)
	}
	orig.Version = 1
	checkRecord(t, b, orig)
	page, err := b.Query(ctx, store.Query{Collection: coll, Tenant: tenantA, Where: []store.Cond{{Field: "other", Op: store.Eq, Value: "x"}}})
	if err != nil {
		t.Fatalf("Query(other = x) = %v, want nil", err)
	}
	if len(page.Records) != 0 {
		t.Errorf("Query(other = x) = %d records, want 0 (rejected Put left an index row)", len(page.Records))
	}
}

func testGetAbsent(t *testing.T, b store.Backend) {
	mustPut(t, b, store.Record{Collection: coll, Tenant: tenantA, ID: "r1", Body: []byte("x")})
	tests := []struct{ name, collection, tenant, id string }{
		{"other id", coll, tenantA, "r2"},
		{"other tenant", coll, tenantB, "r1"},
		{"other collection", "other", tenantA, "r1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.Get(t.Context(), tt.collection, tt.tenant, tt.id)
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get(%s, %s, %s) = %v, want %v", tt.collection, tt.tenant, tt.id, err, store.ErrNotFound)
			}
		})
	}
}

func testUpdate(t *testing.T, b store.Backend) {
	ctx := t.Context()
	rec := mustPut(t, b, store.Record{Collection: coll, Tenant: tenantA, ID: "r1",
		Index: map[string]string{"status": "open", "owner": "u1"}, Body: []byte("v1")})
	steps := []struct {
		name  string
		index map[string]string
		body  []byte
	}{
		{"replace body and drop a field", map[string]string{"status": "closed"}, []byte("v2")},
		{"add a field", map[string]string{"status": "closed", "reviewer": "u2"}, []byte("v3 longer body")},
		{"drop every field", nil, []byte("v4")},
		{"empty body", map[string]string{"status": "done"}, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			in := store.Record{Collection: coll, Tenant: tenantA, ID: "r1", Version: rec.Version, Index: st.index, Body: st.body}
			got, err := b.Update(ctx, in)
			if err != nil {
				t.Fatalf("Update(version %d) = %v, want nil", rec.Version, err)
			}
			want := in
			want.Version = rec.Version + 1
			if d := diff(got, want); d != "" {
				t.Errorf("Update(version %d) returned %s", rec.Version, d)
			}
			checkRecord(t, b, want)
			rec = got
		})
	}
	page, err := b.Query(ctx, store.Query{Collection: coll, Tenant: tenantA, Where: []store.Cond{{Field: "owner", Op: store.Eq, Value: "u1"}}})
	if err != nil {
		t.Fatalf("Query(owner = u1) = %v, want nil", err)
	}
	if len(page.Records) != 0 {
		t.Errorf("Query(owner = u1) = %d records, want 0 (removed index field still matches)", len(page.Records))
	}
	for value, want := range map[string]int{"open": 0, "closed": 0, "done": 1} {
		page, err := b.Query(ctx, store.Query{Collection: coll, Tenant: tenantA, Where: []store.Cond{{Field: "status", Op: store.Eq, Value: value}}})
		if err != nil {
			t.Fatalf("Query(status = %s) = %v, want nil", value, err)
		}
		if len(page.Records) != want {
			t.Errorf("Query(status = %s) = %d records, want %d (a changed index field must match its last value only)", value, len(page.Records), want)
		}
	}
}

func testUpdateStale(t *testing.T, b store.Backend) {
	ctx := t.Context()
	first := mustPut(t, b, store.Record{Collection: coll, Tenant: tenantA, ID: "r1", Index: map[string]string{"status": "open"}, Body: []byte("v1")})
	second, err := b.Update(ctx, store.Record{Collection: coll, Tenant: tenantA, ID: "r1", Version: first.Version,
		Index: map[string]string{"status": "closed"}, Body: []byte("v2")})
	if err != nil {
		t.Fatalf("Update(version 1) = %v, want nil", err)
	}
	for _, v := range []int64{0, first.Version, second.Version + 1, second.Version + 100} {
		t.Run(fmt.Sprintf("version %d", v), func(t *testing.T) {
			_, err := b.Update(ctx, store.Record{Collection: coll, Tenant: tenantA, ID: "r1", Version: v,
				Index: map[string]string{"status": "stale"}, Body: []byte("stale")})
			if !errors.Is(err, store.ErrConflict) {
				t.Errorf("Update(version %d) = %v, want %v", v, err, store.ErrConflict)
			}
			checkRecord(t, b, second)
		})
	}
}

func testUpdateAbsent(t *testing.T, b store.Backend) {
	mustPut(t, b, store.Record{Collection: coll, Tenant: tenantA, ID: "r1", Body: []byte("x")})
	_, err := b.Update(t.Context(), store.Record{Collection: coll, Tenant: tenantA, ID: "r2", Version: 1, Body: []byte("y")})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Update(absent) = %v, want %v", err, store.ErrNotFound)
	}
	if _, err := b.Get(t.Context(), coll, tenantA, "r2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(r2) after Update(absent) = %v, want %v", err, store.ErrNotFound)
	}
}

func testDelete(t *testing.T, b store.Backend) {
	ctx := t.Context()
	tests := []struct {
		name    string
		version func(stored int64) int64
		want    error
	}{
		{"any version", func(int64) int64 { return 0 }, nil},
		{"right version", func(v int64) int64 { return v }, nil},
		{"stale version", func(v int64) int64 { return v - 1 }, store.ErrConflict},
		{"future version", func(v int64) int64 { return v + 1 }, store.ErrConflict},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("r%d", i)
			rec := mustPut(t, b, store.Record{Collection: coll, Tenant: tenantA, ID: id, Index: map[string]string{"k": "v"}, Body: []byte("x")})
			rec, err := b.Update(ctx, store.Record{Collection: coll, Tenant: tenantA, ID: id, Version: rec.Version, Index: rec.Index, Body: []byte("y")})
			if err != nil {
				t.Fatalf("Update(%s) = %v, want nil", id, err)
			}
			v := tt.version(rec.Version)
			err = b.Delete(ctx, coll, tenantA, id, v)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Delete(%s, version %d) = %v, want %v", id, v, err, tt.want)
			}
			if tt.want != nil {
				checkRecord(t, b, rec)
				return
			}
			if _, err := b.Get(ctx, coll, tenantA, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get(%s) after Delete = %v, want %v", id, err, store.ErrNotFound)
			}
			if err := b.Delete(ctx, coll, tenantA, id, 0); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Delete(%s) again = %v, want %v", id, err, store.ErrNotFound)
			}
		})
	}
	t.Run("absent", func(t *testing.T) {
		for _, v := range []int64{0, 1} {
			if err := b.Delete(ctx, coll, tenantA, "never", v); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Delete(never, version %d) = %v, want %v", v, err, store.ErrNotFound)
			}
		}
	})
}

func testDeleteThenPut(t *testing.T, b store.Backend) {
	ctx := t.Context()
	mustPut(t, b, store.Record{Collection: coll, Tenant: tenantA, ID: "r1", Index: map[string]string{"old": "1", "status": "a"}, Body: []byte("old")})
	if err := b.Delete(ctx, coll, tenantA, "r1", 1); err != nil {
		t.Fatalf("Delete(r1) = %v, want nil", err)
	}
	want := store.Record{Collection: coll, Tenant: tenantA, ID: "r1", Version: 1, Index: map[string]string{"status": "b"}, Body: []byte("new")}
	if d := diff(mustPut(t, b, want), want); d != "" {
		t.Errorf("Put(r1) after Delete returned %s", d)
	}
	checkRecord(t, b, want)
	page, err := b.Query(ctx, store.Query{Collection: coll, Tenant: tenantA, OrderBy: "old"})
	if err != nil {
		t.Fatalf("Query(order by old) = %v, want nil", err)
	}
	if len(page.Records) != 0 {
		t.Errorf("Query(order by old) = %d records, want 0 (deleted record's index survived)", len(page.Records))
	}
}

// testIsolation checks that records at the same id in places a and b (which
// differ only in tenant or only in collection) are independent.
func testIsolation(t *testing.T, be store.Backend, a, b store.Record) {
	ctx := t.Context()
	a.ID, b.ID = "shared", "shared"
	a.Index = map[string]string{"status": "open", "who": "a"}
	b.Index = map[string]string{"status": "open", "who": "b"}
	a.Body, b.Body = []byte("body of a"), []byte("body of b")
	a = mustPut(t, be, a)
	b = mustPut(t, be, b)
	checkRecord(t, be, a)
	checkRecord(t, be, b)

	a2 := a
	a2.Body, a2.Index = []byte("a again"), map[string]string{"status": "closed", "who": "a"}
	a2, err := be.Update(ctx, a2)
	if err != nil {
		t.Fatalf("Update(a) = %v, want nil", err)
	}
	checkRecord(t, be, b)

	// b is still at version 1 while a is at 2: a CAS on a's place with b's
	// version must not reach b, and b's CAS must not touch a.
	stale := a2
	stale.Version = 1
	if _, err := be.Update(ctx, stale); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Update(a, version 1) = %v, want %v", err, store.ErrConflict)
	}
	if err := be.Delete(ctx, a.Collection, a.Tenant, a.ID, 1); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Delete(a, version 1) = %v, want %v", err, store.ErrConflict)
	}
	checkRecord(t, be, a2)
	checkRecord(t, be, b)

	for _, rec := range []store.Record{a2, b} {
		page, err := be.Query(ctx, store.Query{Collection: rec.Collection, Tenant: rec.Tenant, OrderBy: "who"})
		if err != nil {
			t.Fatalf("Query(%s/%s) = %v, want nil", rec.Collection, rec.Tenant, err)
		}
		if len(page.Records) != 1 || diff(page.Records[0], rec) != "" {
			t.Errorf("Query(%s/%s) = %v, want only %s/%s/%s", rec.Collection, rec.Tenant, ids(page.Records), rec.Collection, rec.Tenant, rec.ID)
		}
	}
	page, err := be.Query(ctx, store.Query{Collection: a.Collection, Tenant: a.Tenant, Where: []store.Cond{{Field: "who", Op: store.Eq, Value: "b"}}})
	if err != nil {
		t.Fatalf("Query(who = b) = %v, want nil", err)
	}
	if len(page.Records) != 0 {
		t.Errorf("Query(%s/%s, who = b) = %v, want none", a.Collection, a.Tenant, ids(page.Records))
	}

	if err := be.Delete(ctx, a.Collection, a.Tenant, a.ID, 0); err != nil {
		t.Fatalf("Delete(a) = %v, want nil", err)
	}
	checkRecord(t, be, b)
	if _, err := be.Get(ctx, a.Collection, a.Tenant, a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(a) after Delete = %v, want %v", err, store.ErrNotFound)
	}
}

func testTenantIsolation(t *testing.T, b store.Backend) {
	testIsolation(t, b, store.Record{Collection: coll, Tenant: tenantA}, store.Record{Collection: coll, Tenant: tenantB})
}

func testCollectionIsolation(t *testing.T, b store.Backend) {
	testIsolation(t, b, store.Record{Collection: coll, Tenant: tenantA}, store.Record{Collection: "other", Tenant: tenantA})
}

func ids(recs []store.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

// queryData puts n records in (coll, tenantA) with fields status (open,
// closed, pending), created (fixed width with ties of three, absent on every
// seventh record, empty on one) and n, plus decoys with the same ids and
// fields in tenantB and in another collection. It returns the records of
// (coll, tenantA).
func queryData(t testing.TB, b store.Backend, n int) []store.Record {
	statuses := []string{"open", "closed", "pending"}
	var recs []store.Record
	for i := range n {
		index := map[string]string{
			"status":  statuses[i%len(statuses)],
			"created": fmt.Sprintf("2024-01-%02d", i/3),
			"n":       fmt.Sprintf("%04d", i),
		}
		switch {
		case i%7 == 3:
			delete(index, "created")
		case i == 5:
			index["created"] = ""
		}
		// Ids are not in creation order, so ordering by id and by n differ.
		id := fmt.Sprintf("r%03d", (i*37)%n)
		for _, place := range [][2]string{{"other", tenantA}, {coll, tenantB}, {coll, tenantA}} {
			rec := mustPut(t, b, store.Record{Collection: place[0], Tenant: place[1], ID: id, Index: index,
				Body: []byte(place[0] + "/" + place[1] + "/" + id)})
			if place[0] == coll && place[1] == tenantA {
				recs = append(recs, rec)
			}
		}
	}
	return recs
}

// expect is the reference model of Query (without paging).
func expect(recs []store.Record, q store.Query) []store.Record {
	var out []store.Record
next:
	for _, r := range recs {
		for _, c := range q.Where {
			v, ok := r.Index[c.Field]
			if !ok {
				continue next
			}
			var match bool
			switch c.Op {
			case store.Eq:
				match = v == c.Value
			case store.Lt:
				match = v < c.Value
			case store.Lte:
				match = v <= c.Value
			case store.Gt:
				match = v > c.Value
			case store.Gte:
				match = v >= c.Value
			}
			if !match {
				continue next
			}
		}
		if _, ok := r.Index[q.OrderBy]; q.OrderBy != "" && !ok {
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b store.Record) int {
		c := cmp.Or(cmp.Compare(a.Index[q.OrderBy], b.Index[q.OrderBy]), cmp.Compare(a.ID, b.ID))
		if q.Desc {
			return -c
		}
		return c
	})
	return out
}

// queryAll follows q's cursors to the end and returns every record.
func queryAll(t testing.TB, b store.Backend, q store.Query) []store.Record {
	t.Helper()
	var out []store.Record
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatalf("Query(%+v) did not end after %d pages", q, pages)
		}
		page, err := b.Query(context.Background(), q)
		if err != nil {
			t.Fatalf("Query(%+v) page %d = %v, want nil", q, pages, err)
		}
		if q.Limit > 0 && len(page.Records) > q.Limit {
			t.Fatalf("Query(limit %d) page %d = %d records, want at most %d", q.Limit, pages, len(page.Records), q.Limit)
		}
		out = append(out, page.Records...)
		if page.Next == "" {
			return out
		}
		if len(page.Records) == 0 {
			t.Fatalf("Query(%+v) page %d: empty page with a Next cursor", q, pages)
		}
		q.Cursor = page.Next
	}
}

func testQuery(t *testing.T, b store.Backend) {
	recs := queryData(t, b, 40)
	eq := func(f, v string) store.Cond { return store.Cond{Field: f, Op: store.Eq, Value: v} }
	tests := []struct {
		name  string
		where []store.Cond
		order string
		desc  bool
	}{
		{name: "all by id"},
		{name: "all by id desc", desc: true},
		{name: "eq by id", where: []store.Cond{eq("status", "open")}},
		{name: "eq by field", where: []store.Cond{eq("status", "open")}, order: "created"},
		{name: "eq by field desc", where: []store.Cond{eq("status", "closed")}, order: "created", desc: true},
		{name: "by field with ties", order: "created"},
		{name: "by field with ties desc", order: "created", desc: true},
		{name: "by other field", order: "n"},
		{name: "range on order field", order: "created",
			where: []store.Cond{{Field: "created", Op: store.Gte, Value: "2024-01-03"}, {Field: "created", Op: store.Lt, Value: "2024-01-09"}}},
		{name: "range on other field", order: "created", desc: true,
			where: []store.Cond{{Field: "n", Op: store.Gt, Value: "0004"}, {Field: "n", Op: store.Lte, Value: "0030"}}},
		{name: "eq and range", order: "n",
			where: []store.Cond{eq("status", "pending"), {Field: "created", Op: store.Lte, Value: "2024-01-06"}}},
		{name: "lte includes empty value", order: "n", where: []store.Cond{{Field: "created", Op: store.Lte, Value: "2024-01-01"}}},
		{name: "eq empty value", where: []store.Cond{eq("created", "")}},
		{name: "eq on order field", order: "created", where: []store.Cond{eq("created", "2024-01-04")}},
		{name: "no match", where: []store.Cond{eq("status", "nope")}},
		{name: "unknown field", where: []store.Cond{eq("missing", "x")}},
		{name: "order by unknown field", order: "missing"},
		{name: "contradiction", where: []store.Cond{eq("status", "open"), eq("status", "closed")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := expect(recs, store.Query{Where: tt.where, OrderBy: tt.order, Desc: tt.desc})
			for _, limit := range []int{1, 4, 7, store.MaxLimit} {
				q := store.Query{Collection: coll, Tenant: tenantA, Where: tt.where, OrderBy: tt.order, Desc: tt.desc, Limit: limit}
				got := queryAll(t, b, q)
				if !slices.Equal(ids(got), ids(want)) {
					t.Fatalf("Query(limit %d) ids = %v, want %v", limit, ids(got), ids(want))
				}
				for i := range got {
					if d := diff(got[i], want[i]); d != "" {
						t.Errorf("Query(limit %d) record %d: %s", limit, i, d)
					}
				}
			}
		})
	}
	t.Run("first page", func(t *testing.T) {
		page, err := b.Query(t.Context(), store.Query{Collection: coll, Tenant: tenantA, OrderBy: "n", Limit: 5})
		if err != nil {
			t.Fatalf("Query(limit 5) = %v, want nil", err)
		}
		want := expect(recs, store.Query{OrderBy: "n"})[:5]
		if !slices.Equal(ids(page.Records), ids(want)) || page.Next == "" {
			t.Errorf("Query(limit 5) = %v, next %q; want %v and a cursor", ids(page.Records), page.Next, ids(want))
		}
	})
}

func testQueryLimit(t *testing.T, b store.Backend) {
	n := store.MaxLimit + 5
	ctx := t.Context()
	for i := range n {
		mustPut(t, b, store.Record{Collection: coll, Tenant: tenantA, ID: fmt.Sprintf("r%05d", i),
			Index: map[string]string{"n": fmt.Sprintf("%05d", n-i)}})
	}
	tests := []struct {
		name  string
		limit int
		want  int // page size; 0: any in 1..MaxLimit
	}{
		{"zero is default", 0, store.DefaultLimit},
		{"negative is default", -3, store.DefaultLimit},
		{"exact", 250, 250},
		{"max", store.MaxLimit, 0},
		{"above max", store.MaxLimit + 1, 0},
		{"huge", 1 << 30, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := store.Query{Collection: coll, Tenant: tenantA, OrderBy: "n", Limit: tt.limit}
			page, err := b.Query(ctx, q)
			if err != nil {
				t.Fatalf("Query(limit %d) = %v, want nil", tt.limit, err)
			}
			if got := len(page.Records); tt.want != 0 && got != tt.want || got < 1 || got > store.MaxLimit {
				t.Errorf("Query(limit %d) = %d records, want %d (at most %d)", tt.limit, got, tt.want, store.MaxLimit)
			}
			if page.Next == "" {
				t.Errorf("Query(limit %d) of %d records: no Next cursor", tt.limit, n)
			}
		})
	}
	t.Run("all pages", func(t *testing.T) {
		got := queryAll(t, b, store.Query{Collection: coll, Tenant: tenantA, OrderBy: "n", Desc: true, Limit: 1 << 30})
		if len(got) != n {
			t.Fatalf("Query(all) = %d records, want %d", len(got), n)
		}
		for i, r := range got {
			if want := fmt.Sprintf("r%05d", i); r.ID != want {
				t.Fatalf("Query(all)[%d].ID = %s, want %s", i, r.ID, want)
			}
		}
	})
}

func testQueryBadCursor(t *testing.T, b store.Backend) {
	queryData(t, b, 10)
	q := store.Query{Collection: coll, Tenant: tenantA, OrderBy: "n", Limit: 3}
	page, err := b.Query(t.Context(), q)
	if err != nil || page.Next == "" {
		t.Fatalf("Query(limit 3) = next %q, %v; want a cursor", page.Next, err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(page.Next)
	tests := []struct{ name, cursor string }{
		{"not base64", "!!not a cursor!!"},
		{"junk", "aGVsbG8gd29ybGQ"},
		{"single byte", "AA"},
		{"truncated", page.Next[:len(page.Next)/2]},
		{"appended", page.Next + "AAAA"},
	}
	if err == nil {
		flipped := slices.Clone(raw)
		flipped[len(flipped)/3] ^= 0x40
		tests = append(tests, struct{ name, cursor string }{"flipped", base64.RawURLEncoding.EncodeToString(flipped)})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := q
			q.Cursor = tt.cursor
			page, err := b.Query(t.Context(), q)
			if err == nil {
				// A cursor that happens to decode must still stay in its query.
				checkOwn(t, q, page)
				return
			}
			if !errors.Is(err, store.ErrInvalid) {
				t.Errorf("Query(cursor %q) = %v, want %v", tt.cursor, err, store.ErrInvalid)
			}
		})
	}
}

// checkOwn fails t if page holds a record outside q's collection and tenant.
func checkOwn(t *testing.T, q store.Query, page store.Page) {
	t.Helper()
	for _, r := range page.Records {
		want := q.Collection + "/" + q.Tenant + "/" + r.ID
		if r.Collection != q.Collection || r.Tenant != q.Tenant || string(r.Body) != want {
			t.Errorf("Query(%s/%s) returned %s/%s/%s with body %q", q.Collection, q.Tenant, r.Collection, r.Tenant, r.ID, r.Body)
		}
	}
}

func testQueryForeignCursor(t *testing.T, b store.Backend) {
	queryData(t, b, 12)
	from := store.Query{Collection: coll, Tenant: tenantB, OrderBy: "n", Where: []store.Cond{{Field: "status", Op: store.Gte, Value: "a"}}, Limit: 2}
	page, err := b.Query(t.Context(), from)
	if err != nil || page.Next == "" {
		t.Fatalf("Query(limit 2) = next %q, %v; want a cursor", page.Next, err)
	}
	tests := []struct {
		name   string
		change func(*store.Query)
	}{
		{"other tenant", func(q *store.Query) { q.Tenant = tenantA }},
		{"other collection", func(q *store.Query) { q.Collection = "other" }},
		{"other order", func(q *store.Query) { q.OrderBy = "created" }},
		{"other direction", func(q *store.Query) { q.Desc = true }},
		{"other condition", func(q *store.Query) { q.Where = []store.Cond{{Field: "status", Op: store.Gte, Value: "b"}} }},
		{"no condition", func(q *store.Query) { q.Where = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := from
			tt.change(&q)
			q.Cursor = page.Next
			got, err := b.Query(t.Context(), q)
			if err != nil {
				if !errors.Is(err, store.ErrInvalid) {
					t.Errorf("Query(foreign cursor) = %v, want nil or %v", err, store.ErrInvalid)
				}
				return
			}
			checkOwn(t, q, got)
		})
	}
}

func testInvalid(t *testing.T, b store.Backend) {
	ctx := t.Context()
	mustPut(t, b, store.Record{Collection: coll, Tenant: tenantA, ID: "r1", Body: []byte("x")})
	long := strings.Repeat("k", store.MaxKeyLen+1)
	ok := store.Record{Collection: coll, Tenant: tenantA, ID: "r1", Version: 1, Index: map[string]string{"f": "v"}, Body: []byte("y")}
	with := func(f func(*store.Record)) store.Record {
		r := ok
		f(&r)
		return r
	}
	records := []struct {
		name string
		rec  store.Record
	}{
		{"empty collection", with(func(r *store.Record) { r.Collection = "" })},
		{"empty tenant", with(func(r *store.Record) { r.Tenant = "" })},
		{"empty id", with(func(r *store.Record) { r.ID = "" })},
		{"long id", with(func(r *store.Record) { r.ID = long })},
		{"long tenant", with(func(r *store.Record) { r.Tenant = long })},
		{"long collection", with(func(r *store.Record) { r.Collection = long })},
		{"empty field name", with(func(r *store.Record) { r.Index = map[string]string{"": "v"} })},
		{"field name with space", with(func(r *store.Record) { r.Index = map[string]string{"a b": "v"} })},
		{"field name with quote", with(func(r *store.Record) { r.Index = map[string]string{`a"b`: "v"} })},
		{"field name with dollar", with(func(r *store.Record) { r.Index = map[string]string{"$where": "v"} })},
		{"field name not ascii", with(func(r *store.Record) { r.Index = map[string]string{"é": "v"} })},
		{"long field name", with(func(r *store.Record) { r.Index = map[string]string{strings.Repeat("f", store.MaxFieldLen+1): "v"} })},
	}
	for _, tt := range records {
		t.Run(tt.name, func(t *testing.T) {
			put := tt.rec
			if put.ID == ok.ID {
				put.ID = "fresh" // so that only the invalid part can fail Put
			}
			if _, err := b.Put(ctx, put); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("Put(%s) = %v, want %v", tt.name, err, store.ErrInvalid)
			}
			if _, err := b.Update(ctx, tt.rec); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("Update(%s) = %v, want %v", tt.name, err, store.ErrInvalid)
			}
		})
	}
	t.Run("valid field names", func(t *testing.T) {
		rec := store.Record{Collection: coll, Tenant: tenantA, ID: strings.Repeat("i", store.MaxKeyLen),
			Index: map[string]string{"a": "1", "Z_9.x": "2", strings.Repeat("f", store.MaxFieldLen): "3"}}
		rec = mustPut(t, b, rec)
		checkRecord(t, b, rec)
	})
	t.Run("index values of every kind", func(t *testing.T) {
		values := map[string]string{"empty": "", "quote": `a"b\c`, "html": "<a>&amp;", "nul": "a\x00b",
			"unicode": "é—𝄞", "json": `{"f":"v"}`, "path": `$."a.b"`, "space": " x "}
		rec := mustPut(t, b, store.Record{Collection: coll, Tenant: tenantA, ID: "values", Index: values})
		checkRecord(t, b, rec)
		for field, value := range values {
			for _, op := range []store.Op{store.Eq, store.Gte, store.Lte} {
				// Ordered by id, so that the condition is not on the ordering field.
				page, err := b.Query(ctx, store.Query{Collection: coll, Tenant: tenantA,
					Where: []store.Cond{{Field: field, Op: op, Value: value}}})
				if err != nil {
					t.Fatalf("Query(%s %s %q) = %v, want nil", field, op, value, err)
				}
				if got := ids(page.Records); !slices.Equal(got, []string{"values"}) {
					t.Errorf("Query(%s %s %q) = %v, want [values]", field, op, value, got)
				}
			}
		}
		rec.Index = map[string]string{"quote": `a"b\c`, "nul": "a\x00c"}
		rec, err := b.Update(ctx, rec)
		if err != nil {
			t.Fatalf("Update() = %v, want nil", err)
		}
		checkRecord(t, b, rec)
		if err := b.Delete(ctx, coll, tenantA, "values", rec.Version); err != nil {
			t.Fatalf("Delete() = %v, want nil", err)
		}
	})
	places := []struct{ name, collection, tenant, id string }{
		{"empty collection", "", tenantA, "r1"},
		{"empty tenant", coll, "", "r1"},
		{"empty id", coll, tenantA, ""},
		{"long id", coll, tenantA, long},
	}
	for _, tt := range places {
		t.Run("get and delete "+tt.name, func(t *testing.T) {
			if _, err := b.Get(ctx, tt.collection, tt.tenant, tt.id); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("Get(%q, %q, %q) = %v, want %v", tt.collection, tt.tenant, tt.id, err, store.ErrInvalid)
			}
			if err := b.Delete(ctx, tt.collection, tt.tenant, tt.id, 0); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("Delete(%q, %q, %q) = %v, want %v", tt.collection, tt.tenant, tt.id, err, store.ErrInvalid)
			}
		})
	}
	queries := []struct {
		name string
		q    store.Query
	}{
		{"empty collection", store.Query{Tenant: tenantA}},
		{"empty tenant", store.Query{Collection: coll}},
		{"unknown op", store.Query{Collection: coll, Tenant: tenantA, Where: []store.Cond{{Field: "f", Op: "LIKE", Value: "%"}}}},
		{"empty op", store.Query{Collection: coll, Tenant: tenantA, Where: []store.Cond{{Field: "f", Value: "v"}}}},
		{"bad cond field", store.Query{Collection: coll, Tenant: tenantA, Where: []store.Cond{{Field: "f; --", Op: store.Eq, Value: "v"}}}},
		{"empty cond field", store.Query{Collection: coll, Tenant: tenantA, Where: []store.Cond{{Op: store.Eq, Value: "v"}}}},
		{"bad order field", store.Query{Collection: coll, Tenant: tenantA, OrderBy: "f desc"}},
	}
	for _, tt := range queries {
		t.Run("query "+tt.name, func(t *testing.T) {
			if _, err := b.Query(ctx, tt.q); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("Query(%+v) = %v, want %v", tt.q, err, store.ErrInvalid)
			}
		})
	}
	checkRecord(t, b, store.Record{Collection: coll, Tenant: tenantA, ID: "r1", Version: 1, Body: []byte("x")})
}

func testConcurrentCAS(t *testing.T, b store.Backend) {
	const workers = 8
	mustPut(t, b, store.Record{Collection: coll, Tenant: tenantA, ID: "counter", Index: map[string]string{"n": "0000"}, Body: []byte("0")})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			ctx := context.Background()
			for attempt := 0; ; attempt++ {
				if attempt > 1000 {
					t.Errorf("worker %d: no successful Update after %d attempts", w, attempt)
					return
				}
				rec, err := b.Get(ctx, coll, tenantA, "counter")
				if err != nil {
					t.Errorf("worker %d: Get(counter) = %v, want nil", w, err)
					return
				}
				n, err := strconv.Atoi(string(rec.Body))
				if err != nil {
					t.Errorf("worker %d: counter body %q: %v", w, rec.Body, err)
					return
				}
				rec.Body = []byte(strconv.Itoa(n + 1))
				rec.Index = map[string]string{"n": fmt.Sprintf("%04d", n+1)}
				_, err = b.Update(ctx, rec)
				if errors.Is(err, store.ErrConflict) {
					continue
				}
				if err != nil {
					t.Errorf("worker %d: Update(counter) = %v, want nil", w, err)
				}
				return
			}
		})
	}
	wg.Wait()
	checkRecord(t, b, store.Record{Collection: coll, Tenant: tenantA, ID: "counter", Version: 1 + workers,
		Index: map[string]string{"n": fmt.Sprintf("%04d", workers)}, Body: []byte(strconv.Itoa(workers))})
}

// testAtomicReads checks that readers never see a body and an index of
// different versions while a writer updates both.
func testAtomicReads(t *testing.T, b store.Backend) {
	const updates, readers = 40, 2
	rec := mustPut(t, b, store.Record{Collection: coll, Tenant: tenantA, ID: "r1", Index: map[string]string{"v": "1"}, Body: []byte("1")})
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		for range updates {
			v := strconv.FormatInt(rec.Version+1, 10)
			rec.Index, rec.Body = map[string]string{"v": v}, []byte(v)
			var err error
			if rec, err = b.Update(context.Background(), rec); err != nil {
				t.Errorf("Update(r1) = %v, want nil", err)
				return
			}
		}
	})
	check := func(r store.Record) {
		if v := strconv.FormatInt(r.Version, 10); string(r.Body) != v || r.Index["v"] != v {
			t.Errorf("read r1 at version %d: body %q, index %v; want both %s", r.Version, r.Body, r.Index, v)
		}
	}
	for range readers {
		wg.Go(func() {
			ctx := context.Background()
			for {
				select {
				case <-done:
					return
				default:
				}
				got, err := b.Get(ctx, coll, tenantA, "r1")
				if err != nil {
					t.Errorf("Get(r1) = %v, want nil", err)
					return
				}
				check(got)
				page, err := b.Query(ctx, store.Query{Collection: coll, Tenant: tenantA, OrderBy: "v"})
				if err != nil {
					t.Errorf("Query() = %v, want nil", err)
					return
				}
				for _, r := range page.Records {
					check(r)
				}
			}
		})
	}
	wg.Wait()
}

func testBodies(t *testing.T, b store.Backend) {
	large := make([]byte, 1<<20)
	_, _ = rand.Read(large)
	binary := []byte{0, 1, 0, 0, 0xff, 0xfe, 0, 'a', 0}
	tests := []struct {
		name string
		body []byte
	}{
		{"empty", []byte{}},
		{"nil", nil},
		{"zero bytes", binary},
		{"all zero", make([]byte, 4096)},
		{"not utf8", []byte{0xc3, 0x28, 0xa0, 0xa1, 0xf0, 0x28, 0x8c, 0xbc}},
		{"1 MiB", large},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := mustPut(t, b, store.Record{Collection: coll, Tenant: tenantA, ID: tt.name, Body: tt.body})
			checkRecord(t, b, rec)
			rec.Body = slices.Concat(tt.body, binary)
			rec, err := b.Update(t.Context(), rec)
			if err != nil {
				t.Fatalf("Update(%s) = %v, want nil", tt.name, err)
			}
			checkRecord(t, b, rec)
			page, err := b.Query(t.Context(), store.Query{Collection: coll, Tenant: tenantA})
			if err != nil {
				t.Fatalf("Query() = %v, want nil", err)
			}
			i := slices.IndexFunc(page.Records, func(r store.Record) bool { return r.ID == tt.name })
			if i < 0 {
				t.Fatalf("Query() = %v, want it to hold %s", ids(page.Records), tt.name)
			}
			if d := diff(page.Records[i], rec); d != "" {
				t.Errorf("Query() record %s: %s", tt.name, d)
			}
		})
	}
}

func testCanceledContext(t *testing.T, b store.Backend) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := b.Put(ctx, store.Record{Collection: coll, Tenant: tenantA, ID: "r1", Body: []byte("x")}); err == nil {
		t.Errorf("Put(canceled ctx) = nil, want an error")
	}
	if _, err := b.Get(t.Context(), coll, tenantA, "r1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(r1) after canceled Put = %v, want %v", err, store.ErrNotFound)
	}
	if _, err := b.Query(ctx, store.Query{Collection: coll, Tenant: tenantA}); err == nil {
		t.Errorf("Query(canceled ctx) = nil, want an error")
	}
}

func testPing(t *testing.T, b store.Backend) {
	if err := b.Ping(t.Context()); err != nil {
		t.Errorf("Ping() = %v, want nil", err)
	}
}

func testApply(t *testing.T, b store.Backend) {
	ctx := context.Background()
	old := mustPut(t, b, store.Record{Collection: coll, Tenant: tenantA, ID: "old", Body: []byte("o1")})
	gone := mustPut(t, b, store.Record{Collection: coll, Tenant: tenantA, ID: "gone", Body: []byte("g")})
	if got, err := b.Apply(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("Apply(nil) = %v, %v, want no records and nil", got, err)
	}
	writes := []store.Write{
		{Op: store.OpPut, Record: store.Record{Collection: coll, Tenant: tenantA, ID: "new",
			Index: map[string]string{"k": "v"}, Body: []byte("n1")}},
		{Op: store.OpUpdate, Record: store.Record{Collection: coll, Tenant: tenantA, ID: "old", Version: old.Version,
			Index: map[string]string{"k": "w"}, Body: []byte("o2")}},
		{Op: store.OpDelete, Record: store.Record{Collection: coll, Tenant: tenantA, ID: "gone", Version: gone.Version}},
		{Op: store.OpPut, Record: store.Record{Collection: "other", Tenant: tenantB, ID: "elsewhere", Body: []byte("e")}},
		{Op: store.OpUpdate, Record: store.Record{Collection: coll, Tenant: tenantA, ID: "new", Version: 1, Body: []byte("n2")}},
	}
	got, err := b.Apply(ctx, writes)
	if err != nil {
		t.Fatalf("Apply() = %v, want nil", err)
	}
	wantVersions := []int64{1, old.Version + 1, gone.Version, 1, 2}
	if len(got) != len(writes) {
		t.Fatalf("Apply() returned %d records, want %d", len(got), len(writes))
	}
	for i, rec := range got {
		if rec.Version != wantVersions[i] || rec.ID != writes[i].Record.ID {
			t.Errorf("Apply() record %d = %s v%d, want %s v%d", i, rec.ID, rec.Version, writes[i].Record.ID, wantVersions[i])
		}
	}
	checkRecord(t, b, store.Record{Collection: coll, Tenant: tenantA, ID: "new", Version: 2, Body: []byte("n2")})
	checkRecord(t, b, store.Record{Collection: coll, Tenant: tenantA, ID: "old", Version: old.Version + 1,
		Index: map[string]string{"k": "w"}, Body: []byte("o2")})
	checkRecord(t, b, store.Record{Collection: "other", Tenant: tenantB, ID: "elsewhere", Version: 1, Body: []byte("e")})
	if _, err := b.Get(ctx, coll, tenantA, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(deleted in batch) = %v, want ErrNotFound", err)
	}
}

// testApplyAtomic fails the last write of a batch in every way a write can
// fail and checks that nothing of the batch took effect.
func testApplyAtomic(t *testing.T, b store.Backend) {
	ctx := context.Background()
	base := mustPut(t, b, store.Record{Collection: coll, Tenant: tenantA, ID: "base",
		Index: map[string]string{"k": "v"}, Body: []byte("b1")})
	failing := []struct {
		name string
		w    store.Write
		want error
	}{
		{"put existing", store.Write{Op: store.OpPut, Record: store.Record{Collection: coll, Tenant: tenantA, ID: "base"}}, store.ErrConflict},
		{"stale update", store.Write{Op: store.OpUpdate, Record: store.Record{Collection: coll, Tenant: tenantA, ID: "base", Version: base.Version + 5}}, store.ErrConflict},
		{"update absent", store.Write{Op: store.OpUpdate, Record: store.Record{Collection: coll, Tenant: tenantA, ID: "absent", Version: 1}}, store.ErrNotFound},
		{"delete absent", store.Write{Op: store.OpDelete, Record: store.Record{Collection: coll, Tenant: tenantA, ID: "absent"}}, store.ErrNotFound},
		{"delete of other tenant", store.Write{Op: store.OpDelete, Record: store.Record{Collection: coll, Tenant: tenantB, ID: "base"}}, store.ErrNotFound},
		{"invalid record", store.Write{Op: store.OpPut, Record: store.Record{Collection: coll, Tenant: tenantA}}, store.ErrInvalid},
		{"unknown op", store.Write{Op: 99, Record: store.Record{Collection: coll, Tenant: tenantA, ID: "x"}}, store.ErrInvalid},
	}
	for _, tt := range failing {
		t.Run(tt.name, func(t *testing.T) {
			writes := []store.Write{
				{Op: store.OpPut, Record: store.Record{Collection: coll, Tenant: tenantA, ID: "batch-new", Body: []byte("n")}},
				{Op: store.OpUpdate, Record: store.Record{Collection: coll, Tenant: tenantA, ID: "base", Version: base.Version, Body: []byte("b2")}},
				{Op: store.OpPut, Record: store.Record{Collection: coll, Tenant: tenantB, ID: "batch-b", Body: []byte("x")}},
				tt.w,
			}
			_, err := b.Apply(ctx, writes)
			var be *store.BatchError
			if !errors.Is(err, tt.want) || !errors.As(err, &be) || be.Index != 3 {
				t.Fatalf("Apply() = %v, want %v at write 3", err, tt.want)
			}
			checkRecord(t, b, base)
			for _, id := range []string{"batch-new", "batch-b"} {
				for _, tenant := range []string{tenantA, tenantB} {
					if _, err := b.Get(ctx, coll, tenant, id); !errors.Is(err, store.ErrNotFound) {
						t.Errorf("Get(%s/%s) after a failed batch = %v, want ErrNotFound", tenant, id, err)
					}
				}
			}
			page, err := b.Query(ctx, store.Query{Collection: coll, Tenant: tenantA, Where: []store.Cond{{Field: "k", Op: store.Eq, Value: "v"}}})
			if err != nil || len(page.Records) != 1 {
				t.Errorf("Query(index of base) = %d records, %v; want the one untouched record", len(page.Records), err)
			}
		})
	}
}

func testApplyInvalid(t *testing.T, b store.Backend) {
	ctx := context.Background()
	writes := make([]store.Write, store.MaxBatch+1)
	for i := range writes {
		writes[i] = store.Write{Op: store.OpPut, Record: store.Record{Collection: coll, Tenant: tenantA, ID: "w" + strconv.Itoa(i)}}
	}
	if _, err := b.Apply(ctx, writes); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Apply(%d writes) = %v, want ErrInvalid", len(writes), err)
	}
	if _, err := b.Get(ctx, coll, tenantA, "w0"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(w0) after an oversized batch = %v, want ErrNotFound", err)
	}
	if got, err := b.Apply(ctx, writes[:store.MaxBatch]); err != nil || len(got) != store.MaxBatch {
		t.Errorf("Apply(%d writes) = %d records, %v; want all and nil", store.MaxBatch, len(got), err)
	}
}
