package sqlite

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/idvault/idvault/internal/store"
)

// BenchmarkQuery measures one Query call of a few shapes over 1000 records
// with three index fields and 256-byte bodies: a page ordered by an index
// field with an Eq condition, the same query continued from a cursor, a page
// ordered by id, and a page of one record (where statement setup weighs
// most). b.SetBytes is the page's body bytes.
func BenchmarkQuery(b *testing.B) {
	const n, size = 1000, 256
	s := newStore(b, openDB(b, filepath.Join(b.TempDir(), "idvault.db")))
	ctx := b.Context()
	body := make([]byte, size)
	for i := range n {
		if _, err := s.Put(ctx, store.Record{Collection: "c", Tenant: "t", ID: fmt.Sprintf("r%06d", i),
			Index: map[string]string{
				"status":  []string{"open", "closed"}[i%2],
				"created": fmt.Sprintf("2024-01-01T00:00:%08dZ", i),
				"wf":      "workflow-1",
			}, Body: body}); err != nil {
			b.Fatalf("Put() = %v, want nil", err)
		}
	}
	byCreated := store.Query{Collection: "c", Tenant: "t", OrderBy: "created", Desc: true, Limit: 50,
		Where: []store.Cond{{Field: "status", Op: store.Eq, Value: "open"}}}
	first, err := s.Query(ctx, byCreated)
	if err != nil || first.Next == "" {
		b.Fatalf("Query() = next %q, %v; want a cursor", first.Next, err)
	}
	next := byCreated
	next.Cursor = first.Next
	cases := []struct {
		name string
		q    store.Query
		want int
	}{
		{"orderby/page50", byCreated, 50},
		{"orderby/cursor/page50", next, 50},
		{"id/page50", store.Query{Collection: "c", Tenant: "t", Limit: 50}, 50},
		{"id/page1", store.Query{Collection: "c", Tenant: "t", Limit: 1}, 1},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(c.want * size))
			b.ReportAllocs()
			for b.Loop() {
				page, err := s.Query(ctx, c.q)
				if err != nil {
					b.Fatalf("Query() = %v, want nil", err)
				}
				if len(page.Records) != c.want {
					b.Fatalf("Query() = %d records, want %d", len(page.Records), c.want)
				}
			}
		})
	}
	if err := s.Close(); err != nil {
		b.Fatalf("Close() = %v, want nil", err)
	}
}
