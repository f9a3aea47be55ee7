package defsync_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/idvault/idvault/internal/workflow/defsync"
)

// BenchmarkSyncUnchanged measures the pass the scheduler makes every
// workflows.reloadInterval when nothing changed: read, parse and compare
// every file.
func BenchmarkSyncUnchanged(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			f := newFixture(b)
			tn := f.tenant(b)
			for i := range n {
				id := fmt.Sprintf("wf%03d", i)
				f.write(b, tn+"/"+id+".yaml", def(id, 1, id))
			}
			if rep := f.sync(b); rep.Count(defsync.Created) != n {
				b.Fatalf("first pass created %d, want %d", rep.Count(defsync.Created), n)
			}
			b.ResetTimer()
			for b.Loop() {
				rep, err := f.syncer.Sync(context.Background())
				if err != nil || rep.Count(defsync.Unchanged) != n {
					b.Fatalf("Sync() = %d unchanged, %v; want %d", rep.Count(defsync.Unchanged), err, n)
				}
			}
		})
	}
}
