package fernet

import (
	"bytes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// t0 is the creation time of most test tokens.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

func newTestKey(t testing.TB) Key {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustEncrypt(t testing.TB, k Key, plaintext []byte, now time.Time) string {
	t.Helper()
	tok, err := Encrypt(k, plaintext, now)
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	return tok
}

// rawToken decodes a token to its bytes for tests that change them.
func rawToken(t testing.TB, token string) []byte {
	t.Helper()
	b, err := base64.URLEncoding.DecodeString(token)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	k := newTestKey(t)
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 100, 4096 + 3} {
		t.Run(fmt.Sprintf("%dB", n), func(t *testing.T) {
			plain := bytes.Repeat([]byte("PERSONAL-MARKER."), n/16+1)[:n]
			tok := mustEncrypt(t, k, plain, t0)
			b := rawToken(t, tok)
			if n >= 16 && bytes.Contains(b, plain[:16]) {
				t.Error("token contains plaintext")
			}
			if want := overhead + (n/16+1)*16; len(b) != want {
				t.Errorf("len(token bytes) = %d, want %d", len(b), want)
			}
			if b[0] != Version {
				t.Errorf("version byte = %#x, want %#x", b[0], Version)
			}
			if got := binary.BigEndian.Uint64(b[tsOffset:]); got != uint64(t0.Unix()) {
				t.Errorf("timestamp = %d, want %d", got, t0.Unix())
			}
			for _, ttl := range []time.Duration{0, time.Minute} {
				got, err := Decrypt(k, tok, ttl, t0.Add(30*time.Second))
				if err != nil || !bytes.Equal(got, plain) {
					t.Errorf("Decrypt(ttl %v) = %q, %v, want %q", ttl, got, err, plain)
				}
			}
		})
	}
}

func TestEncryptFreshIV(t *testing.T) {
	k := newTestKey(t)
	a := rawToken(t, mustEncrypt(t, k, []byte("same"), t0))
	b := rawToken(t, mustEncrypt(t, k, []byte("same"), t0))
	if bytes.Equal(a[ivOffset:ctOffset], b[ivOffset:ctOffset]) {
		t.Error("two tokens share an IV")
	}
}

func TestDecryptReturnsOwnedPlaintext(t *testing.T) {
	k := newTestKey(t)
	tok := mustEncrypt(t, k, []byte("hello"), t0)
	got, err := Decrypt(k, tok, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	if cap(got) != len(got) {
		t.Errorf("cap(plaintext) = %d, want %d, so appends cannot reach the token buffer", cap(got), len(got))
	}
}

func TestEncryptRejects(t *testing.T) {
	k := newTestKey(t)
	if _, err := Encrypt(Key{}, []byte("x"), t0); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Encrypt(zero Key) error = %v, want ErrInvalidKey", err)
	}
	before := time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC)
	if _, err := Encrypt(k, []byte("x"), before); err == nil {
		t.Errorf("Encrypt(now %s) error = nil, want an error", before)
	}
	if _, err := Decrypt(Key{}, mustEncrypt(t, k, []byte("x"), t0), 0, t0); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Decrypt(zero Key) error = %v, want ErrInvalidKey", err)
	}
}

func TestDecryptRejects(t *testing.T) {
	k := newTestKey(t)
	// A token whose URL-safe spelling uses '-' or '_', so that its
	// standard-alphabet spelling differs (random IVs make that likely, not
	// certain).
	tok := mustEncrypt(t, k, []byte("hello, PERSONAL-MARKER"), t0)
	for i := 0; !strings.ContainsAny(tok, "-_") && i < 100; i++ {
		tok = mustEncrypt(t, k, []byte("hello, PERSONAL-MARKER"), t0)
	}
	raw := rawToken(t, tok)
	enc := base64.URLEncoding.EncodeToString

	t.Run("wrong key", func(t *testing.T) {
		if _, err := Decrypt(newTestKey(t), tok, 0, t0); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("Decrypt(other key) error = %v, want ErrInvalidToken", err)
		}
	})
	t.Run("every flipped bit", func(t *testing.T) {
		for i := range raw {
			for bit := range 8 {
				c := bytes.Clone(raw)
				c[i] ^= 1 << bit
				if got, err := Decrypt(k, enc(c), 0, t0); !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("Decrypt(byte %d bit %d flipped) = %q, %v, want ErrInvalidToken", i, bit, got, err)
				}
			}
		}
	})
	t.Run("every changed character", func(t *testing.T) {
		for i := range len(tok) {
			for _, r := range "A_-=0" {
				if tok[i] == byte(r) {
					continue
				}
				c := tok[:i] + string(r) + tok[i+1:]
				if got, err := Decrypt(k, c, 0, t0); !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("Decrypt(character %d = %q) = %q, %v, want ErrInvalidToken", i, r, got, err)
				}
			}
		}
	})
	t.Run("every truncation", func(t *testing.T) {
		for n := range len(raw) {
			if got, err := Decrypt(k, enc(raw[:n]), 0, t0); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Decrypt(first %d of %d bytes) = %q, %v, want ErrInvalidToken", n, len(raw), got, err)
			}
		}
		for n := range len(tok) {
			if got, err := Decrypt(k, tok[:n], 0, t0); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Decrypt(first %d of %d characters) = %q, %v, want ErrInvalidToken", n, len(tok), got, err)
			}
		}
	})
	t.Run("extended", func(t *testing.T) {
		for _, extra := range [][]byte{{0}, bytes.Repeat([]byte{0}, 16), bytes.Repeat([]byte{0x10}, 16)} {
			c := append(bytes.Clone(raw), extra...)
			if got, err := Decrypt(k, enc(c), 0, t0); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Decrypt(%d bytes appended) = %q, %v, want ErrInvalidToken", len(extra), got, err)
			}
		}
	})

	// The token is 89 bytes, so the character before its "=" carries two
	// unused bits: the same bytes have non-canonical spellings.
	last := strings.Index(tok, "=") - 1
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	sloppy := tok[:last] + string(alphabet[strings.IndexByte(alphabet, tok[last])^1]) + tok[last+1:]
	if b, err := base64.URLEncoding.DecodeString(sloppy); err != nil || !bytes.Equal(b, raw) {
		t.Fatalf("test setup: sloppy spelling decodes to %x, %v, want the token bytes", b, err)
	}
	forms := []struct{ name, token string }{
		{"empty", ""},
		{"version 0x81", enc(append([]byte{0x81}, raw[1:]...))},
		{"no padding", strings.TrimRight(tok, "=")},
		{"standard alphabet", base64.StdEncoding.EncodeToString(raw)},
		{"non-zero trailing bits", sloppy},
		{"newline inside", tok[:10] + "\n" + tok[10:]},
		{"trailing newline", tok + "\n"},
		{"trailing space", tok + " "},
		{"header only", enc(raw[:ctOffset])},
		{"no ciphertext", enc(append(bytes.Clone(raw[:ctOffset]), raw[len(raw)-macLen:]...))},
	}
	for _, tc := range forms {
		t.Run(tc.name, func(t *testing.T) {
			if tc.token == tok {
				t.Fatal("test setup: form equals the token")
			}
			if got, err := Decrypt(k, tc.token, 0, t0); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Decrypt(%q) = %q, %v, want ErrInvalidToken", tc.token, got, err)
			}
		})
	}
}

// sealPadded makes an authentic token whose ciphertext is padded exactly
// as given, so that tests can present bad padding behind a valid HMAC.
func sealPadded(k Key, padded []byte) string {
	b := make([]byte, overhead+len(padded))
	b[0] = Version
	binary.BigEndian.PutUint64(b[tsOffset:], uint64(t0.Unix()))
	ct := b[ctOffset : ctOffset+len(padded)]
	cipher.NewCBCEncrypter(k.d.block, b[ivOffset:ctOffset]).CryptBlocks(ct, padded)
	mac := hmac.New(sha256.New, k.d.signing)
	mac.Write(b[:ctOffset+len(padded)])
	mac.Sum(b[:ctOffset+len(padded)])
	return base64.URLEncoding.EncodeToString(b)
}

func TestDecryptPadding(t *testing.T) {
	k := newTestKey(t)
	block := func(tail ...byte) []byte {
		return append(bytes.Repeat([]byte{'a'}, 16-len(tail)), tail...)
	}
	tests := []struct {
		name   string
		padded []byte
		want   string
		ok     bool
	}{
		{"one byte", block(1), strings.Repeat("a", 15), true},
		{"full block", append(block(), bytes.Repeat([]byte{16}, 16)...), strings.Repeat("a", 16), true},
		{"zero", block(0), "", false},
		{"seventeen", append(block(), bytes.Repeat([]byte{17}, 16)...), "", false},
		{"255", block(255), "", false},
		{"mismatched byte", block(2, 3, 3), "", false},
		{"mismatched first byte", block(3, 4, 4, 4), "", false},
		{"short of its count", block(4, 4, 4), "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := sealPadded(k, tc.padded)
			got, err := Decrypt(k, tok, time.Minute, t0)
			if tc.ok {
				if err != nil || string(got) != tc.want {
					t.Errorf("Decrypt = %q, %v, want %q", got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrExpired) {
				t.Errorf("Decrypt = %q, %v, want ErrInvalidToken", got, err)
			}
			if _, err := (Keys{k}).Rotate(tok); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Rotate error = %v, want ErrInvalidToken", err)
			}
		})
	}
}

func TestDecryptTime(t *testing.T) {
	k := newTestKey(t)
	var iv [16]byte
	tok := seal(k, []byte("hello"), uint64(t0.Unix()), iv)
	ttl := time.Hour
	tests := []struct {
		name string
		ttl  time.Duration
		now  time.Time
		want error
	}{
		{"just made", ttl, t0, nil},
		{"at ttl", ttl, t0.Add(ttl), nil},
		{"within the second after ttl", ttl, t0.Add(ttl + 999*time.Millisecond), nil},
		{"one second past ttl", ttl, t0.Add(ttl + time.Second), ErrExpired},
		{"sub-second ttl at the same second", 500 * time.Millisecond, t0.Add(999 * time.Millisecond), nil},
		{"sub-second ttl a second later", 500 * time.Millisecond, t0.Add(time.Second), ErrExpired},
		{"max clock skew ahead", ttl, t0.Add(-MaxClockSkew), nil},
		{"beyond clock skew", ttl, t0.Add(-MaxClockSkew - time.Second), ErrExpired},
		{"max ttl", math.MaxInt64, t0.Add(100 * 365 * 24 * time.Hour), nil},
		{"no ttl, a century later", 0, t0.Add(100 * 365 * 24 * time.Hour), nil},
		{"no ttl, far in the past", 0, time.Time{}, nil},
		{"negative ttl is no ttl", -time.Second, t0.Add(ttl * 1000), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decrypt(k, tok, tc.ttl, tc.now)
			if !errors.Is(err, tc.want) || (tc.want == nil && string(got) != "hello") {
				t.Errorf("Decrypt(ttl %v, now %s) = %q, %v, want error %v", tc.ttl, tc.now, got, err, tc.want)
			}
		})
	}

	far := []struct {
		name string
		ts   uint64
	}{
		{"year 3000", uint64(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC).Unix())},
		{"2^62", 1 << 62},
		{"2^62 + 1", 1<<62 + 1},
		{"2^63", 1 << 63},
		{"max uint64", math.MaxUint64},
	}
	for _, tc := range far {
		t.Run("timestamp "+tc.name, func(t *testing.T) {
			tok := seal(k, []byte("hello"), tc.ts, iv)
			if _, err := Decrypt(k, tok, math.MaxInt64, t0); !errors.Is(err, ErrExpired) {
				t.Errorf("Decrypt(ttl max) error = %v, want ErrExpired", err)
			}
			if got, err := Decrypt(k, tok, 0, t0); err != nil || string(got) != "hello" {
				t.Errorf("Decrypt(no ttl) = %q, %v, want %q", got, err, "hello")
			}
		})
	}
	t.Run("timestamp zero", func(t *testing.T) {
		tok := seal(k, []byte("hello"), 0, iv)
		if _, err := Decrypt(k, tok, ttl, t0); !errors.Is(err, ErrExpired) {
			t.Errorf("Decrypt error = %v, want ErrExpired", err)
		}
	})
}

func TestKeys(t *testing.T) {
	newK, oldK, olderK := newTestKey(t), newTestKey(t), newTestKey(t)
	ks := Keys{newK, oldK, olderK}
	plain := []byte("PERSONAL-MARKER")

	t.Run("encrypts with the first key", func(t *testing.T) {
		tok, err := ks.Encrypt(plain, t0)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := Decrypt(newK, tok, 0, t0); err != nil || !bytes.Equal(got, plain) {
			t.Errorf("Decrypt(first key) = %q, %v, want %q", got, err, plain)
		}
		if _, err := Decrypt(oldK, tok, 0, t0); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("Decrypt(second key) error = %v, want ErrInvalidToken", err)
		}
	})
	for i, k := range ks {
		t.Run(fmt.Sprintf("decrypts key %d", i), func(t *testing.T) {
			tok := mustEncrypt(t, k, plain, t0)
			if got, err := ks.Decrypt(tok, time.Minute, t0); err != nil || !bytes.Equal(got, plain) {
				t.Errorf("Keys.Decrypt = %q, %v, want %q", got, err, plain)
			}
			if _, err := ks.Decrypt(tok, time.Minute, t0.Add(time.Hour)); !errors.Is(err, ErrExpired) {
				t.Errorf("Keys.Decrypt(an hour later) error = %v, want ErrExpired", err)
			}
		})
	}
	t.Run("unknown key", func(t *testing.T) {
		tok := mustEncrypt(t, newTestKey(t), plain, t0)
		if _, err := ks.Decrypt(tok, 0, t0); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("Keys.Decrypt error = %v, want ErrInvalidToken", err)
		}
		if _, err := ks.Rotate(tok); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("Keys.Rotate error = %v, want ErrInvalidToken", err)
		}
	})
	t.Run("rotate", func(t *testing.T) {
		made := t0.Add(-48 * time.Hour)
		tok := mustEncrypt(t, olderK, plain, made)
		rotated, err := ks.Rotate(tok)
		if err != nil {
			t.Fatalf("Rotate: %v", err)
		}
		if got, err := Decrypt(newK, rotated, 0, t0); err != nil || !bytes.Equal(got, plain) {
			t.Errorf("Decrypt(first key, rotated) = %q, %v, want %q", got, err, plain)
		}
		oldRaw, newRaw := rawToken(t, tok), rawToken(t, rotated)
		if !bytes.Equal(oldRaw[tsOffset:ivOffset], newRaw[tsOffset:ivOffset]) {
			t.Errorf("rotated timestamp = %x, want %x", newRaw[tsOffset:ivOffset], oldRaw[tsOffset:ivOffset])
		}
		if bytes.Equal(oldRaw[ivOffset:ctOffset], newRaw[ivOffset:ctOffset]) {
			t.Error("rotated token reuses the IV")
		}
		if _, err := Decrypt(newK, rotated, time.Hour, t0); !errors.Is(err, ErrExpired) {
			t.Errorf("Decrypt(rotated, ttl 1h) error = %v, want ErrExpired: rotation must not extend a token's life", err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		tok := mustEncrypt(t, newK, plain, t0)
		if _, err := (Keys{}).Encrypt(plain, t0); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Keys{}.Encrypt error = %v, want ErrInvalidKey", err)
		}
		if _, err := (Keys{}).Decrypt(tok, 0, t0); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Keys{}.Decrypt error = %v, want ErrInvalidKey", err)
		}
		if _, err := (Keys{}).Rotate(tok); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Keys{}.Rotate error = %v, want ErrInvalidKey", err)
		}
		if _, err := (Keys{newK, {}}).Decrypt(tok, 0, t0); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Keys{k, zero}.Decrypt error = %v, want ErrInvalidKey", err)
		}
	})
}

// FuzzDecrypt checks that Decrypt never panics and accepts only tokens made
// by its key: whatever it opens, sealing the plaintext again with the
// token's timestamp and IV must give back the very same token.
func FuzzDecrypt(f *testing.F) {
	k, err := ParseKey("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")
	if err != nil {
		f.Fatal(err)
	}
	other := newTestKey(f)
	var iv [16]byte
	f.Add("gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==")
	f.Add("gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0ODz4LEpdELGQAad7aNEHbf-JkLPIpuiYRLQ3RtXatOYREu2FWke6CnJNYIbkuKNqOhw==")
	f.Add(seal(k, nil, 0, iv))
	f.Add(seal(k, bytes.Repeat([]byte("x"), 40), uint64(t0.Unix()), iv))
	f.Add(seal(other, []byte("other key"), uint64(t0.Unix()), iv))
	f.Add("")
	f.Add("gA==")
	f.Fuzz(func(t *testing.T, token string) {
		plain, err := Decrypt(k, token, time.Hour, t0)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Decrypt error = %v, want ErrInvalidToken", err)
			}
			return
		}
		raw, err := tokenEncoding.DecodeString(token)
		if err != nil {
			t.Fatalf("Decrypt accepted %q, which is not canonical base64url: %v", token, err)
		}
		var tokIV [16]byte
		copy(tokIV[:], raw[ivOffset:ctOffset])
		if again := seal(k, plain, binary.BigEndian.Uint64(raw[tsOffset:]), tokIV); again != token {
			t.Fatalf("Decrypt accepted %q, but the key makes %q from its contents", token, again)
		}
		if _, err := (Keys{other}).Decrypt(token, 0, t0); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("another key opened %q: error = %v", token, err)
		}
	})
}

func benchSizes() []int { return []int{100, 4 << 10, 64 << 10} }

func sizeName(n int) string {
	if n >= 1<<10 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

func BenchmarkEncrypt(b *testing.B) {
	k := newTestKey(b)
	for _, n := range benchSizes() {
		plain := make([]byte, n)
		b.Run(sizeName(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Encrypt(k, plain, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecrypt(b *testing.B) {
	k := newTestKey(b)
	for _, n := range benchSizes() {
		tok := mustEncrypt(b, k, make([]byte, n), t0)
		b.Run(sizeName(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decrypt(k, tok, time.Hour, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
