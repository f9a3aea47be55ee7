package auditlog

import (
	"context"
	"fmt"
	"testing"
)

// benchEntries returns n distinct events of about 400 bytes each.
func benchEntries(b *testing.B, tenant string, from, n int) []Entry {
	b.Helper()
	out := make([]Entry, n)
	for i := range out {
		out[i] = entry(b, tenant, from+i)
	}
	return out
}

// BenchmarkAppend measures appends with the tree, tiles, checkpoints every
// 1000 events and durable (synchronous=FULL) SQLite commits, in calls of
// batch events. One op is one event.
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1, 16, 256, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			f := newFixture(b, Options{CheckpointEvery: 1000})
			evs := benchEntries(b, "t1", 0, b.N)
			b.SetBytes(int64(len(evs[0].Data)))
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				if _, err := f.log.Append(context.Background(), evs[i:min(i+batch, b.N)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkVerify measures Verify over a log of n events. One op is one
// whole verification.
func BenchmarkVerify(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			f := newFixture(b, Options{CheckpointEvery: 1000})
			for i := 0; i < n; i += 1000 {
				if _, err := f.log.Append(context.Background(), benchEntries(b, "t1", i, 1000)); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for range b.N {
				rep, err := f.log.Verify(context.Background(), "t1", VerifyOptions{})
				if err != nil || !rep.Verified() || rep.Events != int64(n) {
					b.Fatalf("Verify() = %+v, %v", rep, err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkEventsScan measures a filtered read that matches few events, so
// that Events opens every event of the log: one op is one full pass.
func BenchmarkEventsScan(b *testing.B) {
	const n = 20000
	f := newFixture(b, Options{CheckpointEvery: 1000})
	for i := 0; i < n; i += 1000 {
		if _, err := f.log.Append(context.Background(), benchEntries(b, "t1", i, 1000)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		cursor, got := "", 0
		for {
			evs, next, err := f.log.Events(context.Background(), "t1", Filter{ResourceID: "res-3", ActorID: "user-1"}, cursor, 100)
			if err != nil {
				b.Fatal(err)
			}
			got += len(evs)
			if next == "" {
				break
			}
			cursor = next
		}
		if got != n/35 {
			b.Fatalf("matched %d events, want %d", got, n/35)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}
