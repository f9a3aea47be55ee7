package barrier

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
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
	sealed, err := b.Seal(context.Background(), p, plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("PERSONAL-MARKER")) {
		t.Fatal("sealed value contains plaintext")
	}
	if len(sealed) != len(plain)+Overhead {
		t.Errorf("len(sealed) = %d, want %d", len(sealed), len(plain)+Overhead)
	}
	got, err := b.Open(context.Background(), p, sealed)
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
	sealed, err := b.Seal(context.Background(), p, []byte("secret body"))
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
		{"other tenant", Place{"t2", "sessions", "s1", "body", ""}},
		{"other collection", Place{"t1", "users", "s1", "body", ""}},
		{"other id", Place{"t1", "sessions", "s2", "body", ""}},
		{"other field", Place{"t1", "sessions", "s1", "key", ""}},
		{"boundary shift", Place{"t1s", "essions", "s1", "body", ""}},
	}
	for _, tc := range moved {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := b.Open(context.Background(), tc.p, sealed); !errors.Is(err, ErrOpen) {
				t.Errorf("Open(%v) error = %v, want ErrOpen", tc.p, err)
			}
		})
	}
	t.Run("every flipped byte", func(t *testing.T) {
		for i := range sealed {
			c := bytes.Clone(sealed)
			c[i] ^= 0x01
			if _, err := b.Open(context.Background(), p, c); !errors.Is(err, ErrOpen) {
				t.Fatalf("Open with byte %d flipped error = %v, want ErrOpen", i, err)
			}
		}
	})
	t.Run("truncated", func(t *testing.T) {
		for n := range len(sealed) {
			if _, err := b.Open(context.Background(), p, sealed[:n]); !errors.Is(err, ErrOpen) {
				t.Fatalf("Open(truncated to %d) error = %v, want ErrOpen", n, err)
			}
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		if _, err := other.Open(context.Background(), p, sealed); !errors.Is(err, ErrOpen) {
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
	sealed, err := old.Seal(context.Background(), p, []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := NewAESGCM(newK, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Open(context.Background(), p, sealed); err != nil || string(got) != "v" {
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
	sealed, err := b.Seal(context.Background(), p, []byte("seed"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add([]byte{VersionRoot})
	// Each fuzz worker seals its seed under a nonce of its own, so a value
	// counts as forged unless the documented format opens it too (see
	// FuzzHeaderAndOpen).
	f.Fuzz(func(t *testing.T, data []byte) {
		plain, err := b.Open(context.Background(), p, data)
		if err != nil {
			return
		}
		if want, derr := documentedOpen(key, data, p); derr != nil || !bytes.Equal(plain, want) || data[0] != VersionRoot {
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
				s, err := bar.Seal(context.Background(), p, plain)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := bar.Open(context.Background(), p, s); err != nil {
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

// newDataKey returns a data key over fresh random bytes with the given id,
// and those bytes.
func newDataKey(t testing.TB, id uint32) (*DataKey, []byte) {
	t.Helper()
	raw := newKey(t)
	k, err := NewDataKey(raw, id)
	if err != nil {
		t.Fatalf("NewDataKey() = %v, want nil", err)
	}
	return k, raw
}

func TestDataKeySealOpen(t *testing.T) {
	k, _ := newDataKey(t, 0x0a0b0c0d)
	tests := []struct {
		name  string
		p     Place
		plain []byte
	}{
		{"tenant scope", Place{Tenant: "t1", Collection: "users", ID: "u1", Field: "body"}, []byte(`{"name":"PERSONAL-MARKER"}`)},
		{"session scope", Place{Tenant: "t1", Collection: "sessions", ID: "s1", Field: "body", Scope: "s1"}, []byte(`{"doc":"PERSONAL-MARKER"}`)},
		{"empty plaintext", Place{Tenant: "t1", Collection: "c", ID: "i", Field: "f"}, nil},
		{"empty place", Place{}, []byte("x")},
		{"4 KiB", Place{Tenant: "t1", Collection: "files", ID: "f1", Field: "key", Scope: "s1"}, bytes.Repeat([]byte("PERSONAL-MARKER "), 256)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sealed, err := k.Seal(tc.p, tc.plain)
			if err != nil {
				t.Fatalf("Seal() = %v, want nil", err)
			}
			if len(sealed) != len(tc.plain)+Overhead {
				t.Errorf("len(Seal()) = %d, want %d", len(sealed), len(tc.plain)+Overhead)
			}
			if len(tc.plain) >= 8 && bytes.Contains(sealed, tc.plain[:8]) {
				t.Errorf("Seal() = %x contains the plaintext", sealed)
			}
			if v, id, ok := Header(sealed); v != VersionData || id != k.ID() || !ok {
				t.Errorf("Header(sealed) = %#x, %#x, %v, want %#x, %#x, true", v, id, ok, VersionData, k.ID())
			}
			got, err := k.Open(tc.p, sealed)
			if err != nil || !bytes.Equal(got, tc.plain) {
				t.Errorf("Open() = %q, %v, want %q, nil", got, err, tc.plain)
			}
			again, err := k.Seal(tc.p, tc.plain)
			if err != nil {
				t.Fatalf("Seal() = %v, want nil", err)
			}
			if bytes.Equal(again, sealed) {
				t.Error("two seals of one plaintext are equal, want distinct nonces")
			}
		})
	}
}

func TestDataKeyOpenRejects(t *testing.T) {
	k, raw := newDataKey(t, 7)
	p := Place{Tenant: "t1", Collection: "sessions", ID: "s1", Field: "body", Scope: "s1"}
	sealed, err := k.Seal(p, []byte("secret body"))
	if err != nil {
		t.Fatal(err)
	}
	tenantScope := Place{Tenant: "t1", Collection: "users", ID: "u1", Field: "body"}
	tenantSealed, err := k.Seal(tenantScope, []byte("secret body"))
	if err != nil {
		t.Fatal(err)
	}
	moved := []struct {
		name   string
		from   Place
		sealed []byte
		to     Place
	}{
		{"other tenant", p, sealed, Place{"t2", "sessions", "s1", "body", "s1"}},
		{"other collection", p, sealed, Place{"t1", "files", "s1", "body", "s1"}},
		{"other id", p, sealed, Place{"t1", "sessions", "s2", "body", "s1"}},
		{"other field", p, sealed, Place{"t1", "sessions", "s1", "key", "s1"}},
		{"other scope", p, sealed, Place{"t1", "sessions", "s1", "body", "s2"}},
		{"scope dropped", p, sealed, Place{"t1", "sessions", "s1", "body", ""}},
		{"scope added", tenantScope, tenantSealed, Place{"t1", "users", "u1", "body", "s1"}},
		{"field and scope boundary shift", p, sealed, Place{"t1", "sessions", "s1", "bodys", "1"}},
		{"tenant and collection boundary shift", p, sealed, Place{"t1s", "essions", "s1", "body", "s1"}},
	}
	for _, tc := range moved {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := k.Open(tc.from, tc.sealed); err != nil {
				t.Fatalf("Open(%v) at its own place = %v, want nil", tc.from, err)
			}
			if _, err := k.Open(tc.to, tc.sealed); !errors.Is(err, ErrOpen) {
				t.Errorf("Open(%v) error = %v, want ErrOpen", tc.to, err)
			}
		})
	}
	t.Run("every flipped bit", func(t *testing.T) {
		for i := range sealed {
			for bit := range 8 {
				c := bytes.Clone(sealed)
				c[i] ^= 1 << bit
				if _, err := k.Open(p, c); !errors.Is(err, ErrOpen) {
					t.Fatalf("Open with byte %d bit %d flipped error = %v, want ErrOpen", i, bit, err)
				}
			}
		}
	})
	t.Run("every truncation", func(t *testing.T) {
		for n := range len(sealed) {
			if _, err := k.Open(p, sealed[:n]); !errors.Is(err, ErrOpen) {
				t.Fatalf("Open(truncated to %d) error = %v, want ErrOpen", n, err)
			}
		}
	})
	t.Run("appended byte", func(t *testing.T) {
		if _, err := k.Open(p, append(bytes.Clone(sealed), 0)); !errors.Is(err, ErrOpen) {
			t.Errorf("Open(sealed+0x00) error = %v, want ErrOpen", err)
		}
	})
	t.Run("wrong key id", func(t *testing.T) {
		same, err := NewDataKey(raw, k.ID()+1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := same.Open(p, sealed); !errors.Is(err, ErrOpen) {
			t.Errorf("Open under key id %d error = %v, want ErrOpen", same.ID(), err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		other, _ := newDataKey(t, k.ID())
		if _, err := other.Open(p, sealed); !errors.Is(err, ErrOpen) {
			t.Errorf("Open under another key with the same id error = %v, want ErrOpen", err)
		}
	})
}

// TestFormatsDoNotMix seals under one 32-byte key in both formats, with the
// data key given the root key's id, so that only the version byte tells the
// formats apart: neither opener accepts the other's values, not even with
// the version byte rewritten.
func TestFormatsDoNotMix(t *testing.T) {
	raw := newKey(t)
	root, err := NewAESGCM(raw)
	if err != nil {
		t.Fatal(err)
	}
	data, err := NewDataKey(raw, KeyID(raw))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := Place{Tenant: "t1", Collection: "keys", ID: "tenant", Field: "key"}
	rootSealed, err := root.Seal(ctx, p, []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	dataSealed, err := data.Seal(p, []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rootSealed[1:5], dataSealed[1:5]) {
		t.Fatalf("key ids differ: %x, %x", rootSealed[1:5], dataSealed[1:5])
	}
	relabel := func(b []byte, v byte) []byte {
		c := bytes.Clone(b)
		c[0] = v
		return c
	}
	t.Run("VersionRoot value to DataKey.Open", func(t *testing.T) {
		if _, err := data.Open(p, rootSealed); !errors.Is(err, ErrOpen) {
			t.Errorf("DataKey.Open(root value) error = %v, want ErrOpen", err)
		}
		if _, err := data.Open(p, relabel(rootSealed, VersionData)); !errors.Is(err, ErrOpen) {
			t.Errorf("DataKey.Open(root value relabelled 0x02) error = %v, want ErrOpen", err)
		}
	})
	t.Run("VersionData value to AESGCM.Open", func(t *testing.T) {
		if _, err := root.Open(ctx, p, dataSealed); !errors.Is(err, ErrOpen) {
			t.Errorf("AESGCM.Open(data value) error = %v, want ErrOpen", err)
		}
		if _, err := root.Open(ctx, p, relabel(dataSealed, VersionRoot)); !errors.Is(err, ErrOpen) {
			t.Errorf("AESGCM.Open(data value relabelled 0x01) error = %v, want ErrOpen", err)
		}
	})
	t.Run("unknown version", func(t *testing.T) {
		for _, v := range []byte{0x00, 0x03, 0xff} {
			if _, err := root.Open(ctx, p, relabel(rootSealed, v)); !errors.Is(err, ErrOpen) {
				t.Errorf("AESGCM.Open(version %#x) error = %v, want ErrOpen", v, err)
			}
			if _, err := data.Open(p, relabel(dataSealed, v)); !errors.Is(err, ErrOpen) {
				t.Errorf("DataKey.Open(version %#x) error = %v, want ErrOpen", v, err)
			}
		}
	})
}

func TestHeader(t *testing.T) {
	valid := make([]byte, Overhead)
	valid[0] = VersionData
	binary.BigEndian.PutUint32(valid[1:5], 0xdeadbeef)
	tests := []struct {
		name        string
		in          []byte
		wantVersion byte
		wantID      uint32
		wantOK      bool
	}{
		{"nil", nil, 0, 0, false},
		{"header only", valid[:5], 0, 0, false},
		{"one short of Overhead", valid[:Overhead-1], 0, 0, false},
		{"exactly Overhead", valid, VersionData, 0xdeadbeef, true},
		{"longer", append(bytes.Clone(valid), 1, 2, 3), VersionData, 0xdeadbeef, true},
		{"any version byte", append([]byte{0x7f, 0, 0, 0, 1}, make([]byte, Overhead)...), 0x7f, 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, id, ok := Header(tc.in)
			if v != tc.wantVersion || id != tc.wantID || ok != tc.wantOK {
				t.Errorf("Header(%x) = %#x, %#x, %v, want %#x, %#x, %v", tc.in, v, id, ok, tc.wantVersion, tc.wantID, tc.wantOK)
			}
		})
	}
}

func TestNewDataKeyRejects(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			if _, err := NewDataKey(make([]byte, n), 1); err == nil {
				t.Errorf("NewDataKey(%d bytes) = nil, want error", n)
			}
		})
	}
}

func TestGenerateDataKey(t *testing.T) {
	k1, id1, err := GenerateDataKey()
	if err != nil {
		t.Fatalf("GenerateDataKey() = %v, want nil", err)
	}
	k2, id2, err := GenerateDataKey()
	if err != nil {
		t.Fatalf("GenerateDataKey() = %v, want nil", err)
	}
	if len(k1) != 32 || len(k2) != 32 {
		t.Fatalf("len(GenerateDataKey()) = %d, %d, want 32", len(k1), len(k2))
	}
	if bytes.Equal(k1, k2) || id1 == id2 {
		t.Errorf("GenerateDataKey() twice = %x/%d, %x/%d, want distinct", k1, id1, k2, id2)
	}
	if _, err := NewDataKey(k1, id1); err != nil {
		t.Errorf("NewDataKey(GenerateDataKey()) = %v, want nil", err)
	}
}

// FuzzHeaderAndOpen feeds arbitrary bytes, at an arbitrary tenant, to
// Header and to both openers: none may panic, and an opener may succeed only
// on a genuine value of its own format, key id and place. A value is
// genuine if the standard library opens it by the documented wire format
// (documentedOpen): the keys are fixed, but each fuzz worker seals its seeds
// with nonces of its own, so the oracle cannot compare bytes.
func FuzzHeaderAndOpen(f *testing.F) {
	rootRaw := bytes.Repeat([]byte{0x11}, 32)
	root, err := NewAESGCM(rootRaw)
	if err != nil {
		f.Fatal(err)
	}
	dataRaw := bytes.Repeat([]byte{0x22}, 32)
	const dataID = 0x01020304
	data, err := NewDataKey(dataRaw, dataID)
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	p := Place{Tenant: "t", Collection: "sessions", ID: "s", Field: "body", Scope: "s"}
	plain := []byte("seed plaintext")
	rootSealed, err := root.Seal(ctx, p, plain)
	if err != nil {
		f.Fatal(err)
	}
	dataSealed, err := data.Seal(p, plain)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rootSealed, p.Tenant)
	f.Add(dataSealed, p.Tenant)
	f.Add(dataSealed, "u")
	f.Add(rootSealed[:Overhead], p.Tenant)
	f.Add(dataSealed[:Overhead-1], p.Tenant)
	f.Add([]byte{VersionRoot}, "")
	f.Add([]byte{VersionData, 1, 2, 3, 4}, "")
	f.Add(append([]byte{VersionData, 1, 2, 3, 4}, make([]byte, 40)...), p.Tenant)
	genuine := func(key []byte, version byte, id uint32, in, got []byte) bool {
		want, err := documentedOpen(key, in, p)
		return err == nil && bytes.Equal(got, want) && in[0] == version && binary.BigEndian.Uint32(in[1:5]) == id
	}
	f.Fuzz(func(t *testing.T, in []byte, tenant string) {
		v, id, ok := Header(in)
		if ok != (len(in) >= Overhead) {
			t.Fatalf("Header(%d bytes) ok = %v, want %v", len(in), ok, len(in) >= Overhead)
		}
		if ok && (v != in[0] || id != binary.BigEndian.Uint32(in[1:5])) {
			t.Fatalf("Header(%x) = %#x, %#x, want the first five bytes", in[:5], v, id)
		}
		q := p
		q.Tenant = tenant
		got, err := root.Open(ctx, q, in)
		switch {
		case err == nil && (tenant != p.Tenant || !genuine(rootRaw, VersionRoot, KeyID(rootRaw), in, got)):
			t.Fatalf("AESGCM.Open(%x) at tenant %q = %q, want ErrOpen", in, tenant, got)
		case err != nil && !errors.Is(err, ErrOpen):
			t.Fatalf("AESGCM.Open(%x) error = %v, want ErrOpen", in, err)
		}
		got, err = data.Open(q, in)
		switch {
		case err == nil && (tenant != p.Tenant || !genuine(dataRaw, VersionData, dataID, in, got)):
			t.Fatalf("DataKey.Open(%x) at tenant %q = %q, want ErrOpen", in, tenant, got)
		case err != nil && !errors.Is(err, ErrOpen):
			t.Fatalf("DataKey.Open(%x) error = %v, want ErrOpen", in, err)
		}
	})
}

// BenchmarkDataKey measures one seal and one open under a data key, the
// per-record cost once the key is in memory.
func BenchmarkDataKey(b *testing.B) {
	k, _ := newDataKey(b, 1)
	p := Place{Tenant: "t", Collection: "sessions", ID: "0194f3b2-0000-7000-8000-000000000000", Field: "body", Scope: "0194f3b2-0000-7000-8000-000000000000"}
	for _, size := range []int{100, 4 << 10} {
		plain := make([]byte, size)
		b.Run(byteSize(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				s, err := k.Seal(p, plain)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := k.Open(p, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
