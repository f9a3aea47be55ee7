package identity_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/idvault/idvault/internal/identity"
)

// password is exactly MinPasswordLen bytes long, the shortest accepted.
const password = "twelve-chars"

func TestHashPassword(t *testing.T) {
	h1, err := identity.HashPassword(password)
	if err != nil {
		t.Fatalf("HashPassword(%q) = %v, want nil", password, err)
	}
	h2, err := identity.HashPassword(password)
	if err != nil {
		t.Fatalf("HashPassword(%q) = %v, want nil", password, err)
	}

	t.Run("owasp parameters", func(t *testing.T) {
		const prefix = "$argon2id$v=19$m=19456,t=2,p=1$"
		if !strings.HasPrefix(h1, prefix) {
			t.Fatalf("HashPassword() = %q, want prefix %q", h1, prefix)
		}
		saltB64, keyB64, ok := strings.Cut(strings.TrimPrefix(h1, prefix), "$")
		if !ok {
			t.Fatalf("HashPassword() = %q, want salt$hash after the parameters", h1)
		}
		salt, err := base64.RawStdEncoding.DecodeString(saltB64)
		if err != nil || len(salt) != 16 {
			t.Errorf("salt %q = %d bytes, %v, want 16 bytes of unpadded base64", saltB64, len(salt), err)
		}
		key, err := base64.RawStdEncoding.DecodeString(keyB64)
		if err != nil || len(key) != 32 {
			t.Errorf("hash %q = %d bytes, %v, want 32 bytes of unpadded base64", keyB64, len(key), err)
		}
	})

	t.Run("salted", func(t *testing.T) {
		if h1 == h2 {
			t.Errorf("HashPassword(%q) twice = %q both times, want different salts", password, h1)
		}
		if !identity.VerifyPassword(h2, password) {
			t.Errorf("VerifyPassword(second hash, %q) = false, want true", password)
		}
	})

	t.Run("too short", func(t *testing.T) {
		for _, pw := range []string{"", "x", password[:identity.MinPasswordLen-1]} {
			if h, err := identity.HashPassword(pw); err == nil {
				t.Errorf("HashPassword(%q) = %q, nil, want an error", pw, h)
			}
		}
	})

	t.Run("verify", func(t *testing.T) {
		tests := []struct {
			name     string
			password string
			want     bool
		}{
			{"right", password, true},
			{"wrong", "twelve-charz", false},
			{"other case", strings.ToUpper(password), false},
			{"prefix", password[:len(password)-1], false},
			{"longer", password + "x", false},
			{"empty", "", false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := identity.VerifyPassword(h1, tt.password); got != tt.want {
					t.Errorf("VerifyPassword(hash, %q) = %v, want %v", tt.password, got, tt.want)
				}
			})
		}
	})

	t.Run("malformed hash", func(t *testing.T) {
		parts := strings.Split(h1, "$") // "", "argon2id", "v=19", params, salt, hash
		with := func(i int, v string) string {
			p := append([]string(nil), parts...)
			p[i] = v
			return strings.Join(p, "$")
		}
		tests := []struct {
			name string
			hash string
		}{
			{"empty", ""},
			{"plain text", password},
			{"argon2i", with(1, "argon2i")},
			{"old version", with(2, "v=16")},
			{"no version", with(2, "")},
			{"missing part", strings.Join(parts[:5], "$")},
			{"extra part", h1 + "$"},
			{"zero memory", with(3, "m=0,t=2,p=1")},
			{"huge memory", with(3, "m=2000000,t=2,p=1")},
			{"zero passes", with(3, "m=19456,t=0,p=1")},
			{"many passes", with(3, "m=19456,t=17,p=1")},
			{"zero lanes", with(3, "m=19456,t=2,p=0")},
			{"lanes overflow", with(3, "m=19456,t=2,p=257")},
			{"negative memory", with(3, "m=-1,t=2,p=1")},
			{"no parameters", with(3, "")},
			{"other passes", with(3, "m=19456,t=3,p=1")},
			{"salt not base64", with(4, "!!!!")},
			{"hash not base64", with(5, "!!!!")},
			{"padded hash", with(5, parts[5]+"=")},
			{"empty hash", with(5, "")},
			{"hash too long", with(5, base64.RawStdEncoding.EncodeToString(make([]byte, 65)))},
			{"truncated hash", with(5, parts[5][:len(parts[5])-4])},
			{"other salt", with(4, base64.RawStdEncoding.EncodeToString(make([]byte, 16)))},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if identity.VerifyPassword(tt.hash, password) {
					t.Errorf("VerifyPassword(%q, %q) = true, want false", tt.hash, password)
				}
			})
		}
	})
}

// BenchmarkVerifyPassword measures one sign-in's argon2id cost.
func BenchmarkVerifyPassword(b *testing.B) {
	h, err := identity.HashPassword(password)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !identity.VerifyPassword(h, password) {
			b.Fatal("VerifyPassword(hash, password) = false, want true")
		}
	}
}
