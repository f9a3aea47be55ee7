package barrier

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strconv"
	"testing"
)

func newKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	b, err := NewAESGCM(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	p := Place{Tenant: "t1", Collection: "sessions", ID: "s1", Field: "body"}
	plain := []byte(`{"name":"Jane Doe PERSONAL-MARKER"}`)
	sealed, err := b.Seal(p, plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("PERSONAL-MARKER")) {
		t.Fatal("sealed value contains plaintext")
	}
	if len(sealed) != len(plain)+Overhead {
		t.Errorf("len(sealed) = %d, want %d", len(sealed), len(plain)+Overhead)
	}
	got, err := b.Open(p, sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v, want %q", got, err, plain)
	}
}

func TestOpenRejects(t *testing.T) {
	key := newKey(t)
	b, err := NewAESGCM(key)
	if err != nil {
		t.Fatal(err)
	}
	p := Place{Tenant: "t1", Collection: "sessions", ID: "s1", Field: "body"}
	sealed, err := b.Seal(p, []byte("secret body"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewAESGCM(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	moved := []struct {
		name string
		p    Place
	}{
		{"other tenant", Place{"t2", "sessions", "s1", "body"}},
		{"other collection", Place{"t1", "users", "s1", "body"}},
		{"other id", Place{"t1", "sessions", "s2", "body"}},
		{"other field", Place{"t1", "sessions", "s1", "key"}},
		{"boundary shift", Place{"t1s", "essions", "s1", "body"}},
	}
	for _, tc := range moved {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := b.Open(tc.p, sealed); !errors.Is(err, ErrOpen) {
				t.Errorf("Open(%v) error = %v, want ErrOpen", tc.p, err)
			}
		})
	}
	t.Run("every flipped byte", func(t *testing.T) {
		for i := range sealed {
			c := bytes.Clone(sealed)
			c[i] ^= 0x01
			if _, err := b.Open(p, c); !errors.Is(err, ErrOpen) {
				t.Fatalf("Open with byte %d flipped error = %v, want ErrOpen", i, err)
			}
		}
	})
	t.Run("truncated", func(t *testing.T) {
		for n := range len(sealed) {
			if _, err := b.Open(p, sealed[:n]); !errors.Is(err, ErrOpen) {
				t.Fatalf("Open(truncated to %d) error = %v, want ErrOpen", n, err)
			}
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		if _, err := other.Open(p, sealed); !errors.Is(err, ErrOpen) {
			t.Errorf("Open with other key error = %v, want ErrOpen", err)
		}
	})
}

func TestSecondaryKeyOpens(t *testing.T) {
	oldKey, newK := newKey(t), newKey(t)
	old, err := NewAESGCM(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	p := Place{Tenant: "t", Collection: "c", ID: "i", Field: "body"}
	sealed, err := old.Seal(p, []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := NewAESGCM(newK, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Open(p, sealed); err != nil || string(got) != "v" {
		t.Errorf("Open under rotated keyring = %q, %v, want %q", got, err, "v")
	}
}

func TestNewAESGCMRejects(t *testing.T) {
	k := newKey(t)
	for name, keys := range map[string][][]byte{
		"none":      nil,
		"short":     {k[:16]},
		"duplicate": {k, k},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewAESGCM(keys...); err == nil {
				t.Errorf("NewAESGCM(%s) succeeded, want error", name)
			}
		})
	}
}

func TestBlinder(t *testing.T) {
	key := newKey(t)
	b, err := NewBlinder(key)
	if err != nil {
		t.Fatal(err)
	}
	a := b.Index("t1", "username", "alice")
	if a != b.Index("t1", "username", "alice") {
		t.Error("Index is not deterministic")
	}
	for _, other := range []string{b.Index("t2", "username", "alice"), b.Index("t1", "email", "alice"), b.Index("t1", "username", "alicf")} {
		if other == a {
			t.Error("Index collides across tenant, field or value")
		}
	}
	b2, err := NewBlinder(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if b2.Index("t1", "username", "alice") == a {
		t.Error("Index does not depend on the key")
	}
}

func FuzzOpen(f *testing.F) {
	key := make([]byte, 32)
	b, err := NewAESGCM(key)
	if err != nil {
		f.Fatal(err)
	}
	p := Place{Tenant: "t", Collection: "c", ID: "i", Field: "body"}
	sealed, err := b.Seal(p, []byte("seed"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add([]byte{Version1})
	f.Fuzz(func(t *testing.T, data []byte) {
		if plain, err := b.Open(p, data); err == nil && !bytes.Equal(data, sealed) {
			t.Fatalf("Open accepted a forged value: %q", plain)
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	bar, err := NewAESGCM(newKey(b))
	if err != nil {
		b.Fatal(err)
	}
	p := Place{Tenant: "t", Collection: "sessions", ID: "0194f3b2-0000-7000-8000-000000000000", Field: "body"}
	for _, size := range []int{256, 4 << 10, 64 << 10} {
		plain := make([]byte, size)
		b.Run(byteSize(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				s, err := bar.Seal(p, plain)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := bar.Open(p, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func byteSize(n int) string {
	if n >= 1<<10 {
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}
