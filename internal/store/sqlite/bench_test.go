package sqlite

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

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

// BenchmarkApplyBatch measures the writes of a session-like workload: one
// Apply of 100 updates of session-shaped records (1.5 KB bodies, five index
// fields of which two change each time) and one of 100 puts of
// index-less 300-byte records, as the writer's batches mix them. Each
// Apply is one durable transaction, so the wall time holds two fsyncs;
// cpu-µs/op is the process's CPU (user and system) per iteration, which
// compares the SQL work.
func BenchmarkApplyBatch(b *testing.B) {
	const n = 100
	ctx := b.Context()
	s := newStore(b, openDB(b, filepath.Join(b.TempDir(), "idvault.db")))
	body := make([]byte, 1500)
	index := func(i, round int) map[string]string {
		return map[string]string{
			"status":     []string{"pending", "in_progress", "review"}[round%3],
			"updatedAt":  fmt.Sprintf("2026-11-29T10:%02d:%02d.%09dZ", round/60%60, round%60, i),
			"createdAt":  fmt.Sprintf("2026-11-29T09:00:00.%09dZ", i),
			"expiresAt":  fmt.Sprintf("2026-11-30T09:00:00.%09dZ", i),
			"workflowId": "workflow-1",
		}
	}
	recs := make([]store.Record, n)
	for i := range recs {
		rec, err := s.Put(ctx, store.Record{Collection: "sessions", Tenant: "t", ID: fmt.Sprintf("s%06d", i), Index: index(i, 0), Body: body})
		if err != nil {
			b.Fatalf("Put() = %v, want nil", err)
		}
		recs[i] = rec
	}
	cpu0 := processCPU(b)
	round := 0
	for b.Loop() {
		round++
		updates := make([]store.Write, n)
		puts := make([]store.Write, n)
		for i := range recs {
			recs[i].Index = index(i, round)
			updates[i] = store.Write{Op: store.OpUpdate, Record: recs[i]}
			puts[i] = store.Write{Op: store.OpPut, Record: store.Record{Collection: "outbox", Tenant: "t",
				ID: fmt.Sprintf("o%06d-%06d", round, i), Body: body[:300]}}
		}
		out, err := s.Apply(ctx, updates)
		if err != nil {
			b.Fatalf("Apply(updates) = %v, want nil", err)
		}
		copy(recs, out)
		if _, err := s.Apply(ctx, puts); err != nil {
			b.Fatalf("Apply(puts) = %v, want nil", err)
		}
	}
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// processCPU returns the CPU time, user and system, the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
