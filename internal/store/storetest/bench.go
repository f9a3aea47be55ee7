package storetest

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/idvault/idvault/internal/store"
)

// benchBodySizes is the ladder of body sizes the record benchmarks run.
var benchBodySizes = []int{1 << 10, 16 << 10, 256 << 10}

// Benchmark runs the shared benchmarks against backends made by newBackend,
// each sub-benchmark on a fresh one: Put, Get and Update of one record per
// operation on a ladder of body sizes (b.SetBytes is the body size), and
// Query of a page of 50 records with an Eq condition ordered by an index
// field (b.SetBytes is the page's body bytes).
func Benchmark(b *testing.B, newBackend func(b *testing.B) store.Backend) {
	for _, size := range benchBodySizes {
		name := fmt.Sprintf("%dKiB", size>>10)
		b.Run("Put/"+name, func(b *testing.B) { benchPut(b, open(b, newBackend), size) })
		b.Run("Get/"+name, func(b *testing.B) { benchGet(b, open(b, newBackend), size) })
		b.Run("Update/"+name, func(b *testing.B) { benchUpdate(b, open(b, newBackend), size) })
	}
	b.Run("Query/page50", func(b *testing.B) { benchQuery(b, open(b, newBackend)) })
}

func benchIndex(i int) map[string]string {
	return map[string]string{
		"status":  []string{"open", "closed", "pending", "review"}[i%4],
		"created": fmt.Sprintf("2024-01-01T00:00:%08dZ", i),
		"wf":      "workflow-1",
	}
}

func benchBody(size int) []byte {
	body := make([]byte, size)
	_, _ = rand.Read(body)
	return body
}

func benchPut(b *testing.B, be store.Backend, size int) {
	ctx := b.Context()
	body := benchBody(size)
	b.SetBytes(int64(size))
	i := 0
	for b.Loop() {
		if _, err := be.Put(ctx, store.Record{Collection: coll, Tenant: tenantA, ID: fmt.Sprintf("r%09d", i), Index: benchIndex(i), Body: body}); err != nil {
			b.Fatalf("Put() = %v, want nil", err)
		}
		i++
	}
}

func benchGet(b *testing.B, be store.Backend, size int) {
	ctx := b.Context()
	const n = 100
	for i := range n {
		mustPut(b, be, store.Record{Collection: coll, Tenant: tenantA, ID: fmt.Sprintf("r%09d", i), Index: benchIndex(i), Body: benchBody(size)})
	}
	b.SetBytes(int64(size))
	i := 0
	for b.Loop() {
		if _, err := be.Get(ctx, coll, tenantA, fmt.Sprintf("r%09d", i%n)); err != nil {
			b.Fatalf("Get() = %v, want nil", err)
		}
		i++
	}
}

func benchUpdate(b *testing.B, be store.Backend, size int) {
	ctx := b.Context()
	rec := mustPut(b, be, store.Record{Collection: coll, Tenant: tenantA, ID: "r1", Index: benchIndex(0), Body: benchBody(size)})
	b.SetBytes(int64(size))
	i := 0
	for b.Loop() {
		i++
		rec.Index = benchIndex(i)
		var err error
		if rec, err = be.Update(ctx, rec); err != nil {
			b.Fatalf("Update() = %v, want nil", err)
		}
	}
}

func benchQuery(b *testing.B, be store.Backend) {
	ctx := b.Context()
	const n, size, pageSize = 1000, 1 << 10, 50
	body := benchBody(size)
	for i := range n {
		mustPut(b, be, store.Record{Collection: coll, Tenant: tenantA, ID: fmt.Sprintf("r%09d", i), Index: benchIndex(i), Body: body})
	}
	q := store.Query{Collection: coll, Tenant: tenantA, Where: []store.Cond{{Field: "status", Op: store.Eq, Value: "open"}},
		OrderBy: "created", Desc: true, Limit: pageSize}
	b.SetBytes(pageSize * size)
	for b.Loop() {
		page, err := be.Query(ctx, q)
		if err != nil {
			b.Fatalf("Query() = %v, want nil", err)
		}
		if len(page.Records) != pageSize {
			b.Fatalf("Query() = %d records, want %d", len(page.Records), pageSize)
		}
	}
}
