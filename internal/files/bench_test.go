package files_test

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"

	"github.com/idvault/idvault/internal/files"
)

var benchSizes = []int{8 << 10, 64 << 10, 1 << 20, 16 << 20}

// benchModes are the Stores benchmarked: through the bucket only, and
// writing and reading the local directory's files directly (as the server
// does for the local bucket).
var benchModes = []struct {
	name   string
	direct bool
}{{"bucket", false}, {"direct", true}}

// BenchmarkPut stores a new file per iteration, as uploads do.
func BenchmarkPut(b *testing.B) {
	for _, m := range benchModes {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/%dKiB", m.name, n>>10), func(b *testing.B) {
				e := newEnvIn(b, m.direct)
				data := randomBytes(b, n)
				b.SetBytes(int64(n))
				i := 0
				for b.Loop() {
					i++
					ref := files.Ref{Tenant: "tenant-a", Location: files.Sessions, ID: "file-" + strconv.Itoa(i)}
					if _, err := e.store.Put(b.Context(), ref, bytes.NewReader(data), int64(n)); err != nil {
						b.Fatalf("Put = %v", err)
					}
				}
			})
		}
	}
}

func BenchmarkReadAll(b *testing.B) {
	for _, m := range benchModes {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/%dKiB", m.name, n>>10), func(b *testing.B) {
				e := newEnvIn(b, m.direct)
				s, err := e.store.Put(b.Context(), ref1, bytes.NewReader(randomBytes(b, n)), int64(n))
				if err != nil {
					b.Fatalf("Put = %v", err)
				}
				b.SetBytes(int64(n))
				for b.Loop() {
					if _, err := e.store.ReadAll(b.Context(), ref1, s); err != nil {
						b.Fatalf("ReadAll = %v", err)
					}
				}
			})
		}
	}
}
