package keyring

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/barrier"
)

var benchSizes = []int{100, 4 << 10}

func sizeName(n int) string {
	if n >= 1<<10 {
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

// benchKeyring returns a keyring over a real SQLite store whose session
// key for benchPlace is created and cached.
func benchKeyring(b *testing.B) (*Keyring, barrier.Place) {
	b.Helper()
	k := newKeyring(b, newStore(b), newRootKey(b, "r1"))
	p := sessionPlace("t1", "0194f3b2-0000-7000-8000-000000000000")
	mustSeal(b, k, p, "warm")
	return k, p
}

// BenchmarkKeyringSeal measures Seal with the data key in the cache.
func BenchmarkKeyringSeal(b *testing.B) {
	k, p := benchKeyring(b)
	ctx := context.Background()
	for _, size := range benchSizes {
		plain := make([]byte, size)
		b.Run(sizeName(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := k.Seal(ctx, p, plain); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkKeyringOpen measures Open with the data key in the cache.
func BenchmarkKeyringOpen(b *testing.B) {
	k, p := benchKeyring(b)
	ctx := context.Background()
	for _, size := range benchSizes {
		sealed, err := k.Seal(ctx, p, make([]byte, size))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(sizeName(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := k.Open(ctx, p, sealed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkKeyringSealOpen measures a Seal and an Open with the data key in
// the cache, to compare with barrier's BenchmarkDataKey.
func BenchmarkKeyringSealOpen(b *testing.B) {
	k, p := benchKeyring(b)
	ctx := context.Background()
	for _, size := range benchSizes {
		plain := make([]byte, size)
		b.Run(sizeName(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				sealed, err := k.Seal(ctx, p, plain)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := k.Open(ctx, p, sealed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkKeyLookup measures finding a data key in the cache.
func BenchmarkKeyLookup(b *testing.B) {
	k, p := benchKeyring(b)
	ctx := context.Background()
	id := dataKeyID(p.Scope)
	for b.Loop() {
		if _, err := k.dataKey(ctx, p.Tenant, id, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKeyLookupMiss measures the path of a data key not in the cache:
// the store Get of its key record and the unwrap by the root key. The
// injected clock moves past CacheTTL at every call, so every lookup misses.
func BenchmarkKeyLookupMiss(b *testing.B) {
	for _, kind := range kekKinds {
		b.Run(kind.name, func(b *testing.B) {
			t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			now := func() time.Time {
				t = t.Add(CacheTTL + time.Second)
				return t
			}
			k := newKeyringAt(b, newStore(b), now, kind.new(b, "r1"))
			p := sessionPlace("t1", "0194f3b2-0000-7000-8000-000000000000")
			mustSeal(b, k, p, "creates the key")
			ctx := context.Background()
			id := dataKeyID(p.Scope)
			for b.Loop() {
				if _, err := k.dataKey(ctx, p.Tenant, id, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
