package files_test

import (
	"bytes"
	"fmt"
	"testing"
)

var benchSizes = []int{8 << 10, 64 << 10, 1 << 20, 16 << 20}

func BenchmarkPut(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dKiB", n>>10), func(b *testing.B) {
			e := newEnv(b)
			data := randomBytes(b, n)
			b.SetBytes(int64(n))
			for b.Loop() {
				if _, err := e.store.Put(b.Context(), ref1, bytes.NewReader(data), int64(n)); err != nil {
					b.Fatalf("Put = %v", err)
				}
			}
		})
	}
}

func BenchmarkReadAll(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dKiB", n>>10), func(b *testing.B) {
			e := newEnv(b)
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
