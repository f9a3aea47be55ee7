package fernet

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// vectorDir holds the Fernet spec's test vectors, in the shared/ directory
// beside the repository.
const vectorDir = "../../../shared/testdata/fernet"

// loadVectors decodes one vector file into v. Without the vector directory
// the test skips, or fails when IDVAULT_TEST_REQUIRE_INTEGRATION=1.
func loadVectors(t *testing.T, name string, v any) {
	t.Helper()
	if _, err := os.Stat(vectorDir); err != nil {
		if os.Getenv("IDVAULT_TEST_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("IDVAULT_TEST_REQUIRE_INTEGRATION=1 but the Fernet vectors are missing: %v", err)
		}
		t.Skipf("Fernet vectors not found (%v); set IDVAULT_TEST_REQUIRE_INTEGRATION=1 to fail instead", err)
	}
	data, err := os.ReadFile(filepath.Join(vectorDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func mustParseKey(t testing.TB, s string) Key {
	t.Helper()
	k, err := ParseKey(s)
	if err != nil {
		t.Fatalf("ParseKey: %v", err)
	}
	return k
}

func TestGenerateVectors(t *testing.T) {
	var vectors []struct {
		Token  string    `json:"token"`
		Now    time.Time `json:"now"`
		IV     [16]byte  `json:"iv"`
		Src    string    `json:"src"`
		Secret string    `json:"secret"`
	}
	loadVectors(t, "generate.json", &vectors)
	if len(vectors) == 0 {
		t.Fatal("generate.json holds no vectors")
	}
	for i, v := range vectors {
		t.Run(v.Src, func(t *testing.T) {
			k := mustParseKey(t, v.Secret)
			if got := seal(k, []byte(v.Src), uint64(v.Now.Unix()), v.IV); got != v.Token {
				t.Errorf("vector %d: seal(%q, %s, %v) = %s, want %s", i, v.Src, v.Now, v.IV, got, v.Token)
			}
			if got, err := Decrypt(k, v.Token, 0, v.Now); err != nil || string(got) != v.Src {
				t.Errorf("vector %d: Decrypt = %q, %v, want %q", i, got, err, v.Src)
			}
		})
	}
}

func TestVerifyVectors(t *testing.T) {
	var vectors []struct {
		Token  string    `json:"token"`
		Now    time.Time `json:"now"`
		TTLSec int       `json:"ttl_sec"`
		Src    string    `json:"src"`
		Secret string    `json:"secret"`
	}
	loadVectors(t, "verify.json", &vectors)
	if len(vectors) == 0 {
		t.Fatal("verify.json holds no vectors")
	}
	for i, v := range vectors {
		t.Run(v.Src, func(t *testing.T) {
			k := mustParseKey(t, v.Secret)
			ttl := time.Duration(v.TTLSec) * time.Second
			got, err := Decrypt(k, v.Token, ttl, v.Now)
			if err != nil || string(got) != v.Src {
				t.Errorf("vector %d: Decrypt(ttl %v, now %s) = %q, %v, want %q", i, ttl, v.Now, got, err, v.Src)
			}
		})
	}
}

func TestInvalidVectors(t *testing.T) {
	var vectors []struct {
		Desc   string    `json:"desc"`
		Token  string    `json:"token"`
		Now    time.Time `json:"now"`
		TTLSec int       `json:"ttl_sec"`
		Secret string    `json:"secret"`
	}
	loadVectors(t, "invalid.json", &vectors)
	if len(vectors) == 0 {
		t.Fatal("invalid.json holds no vectors")
	}
	for _, v := range vectors {
		t.Run(v.Desc, func(t *testing.T) {
			k := mustParseKey(t, v.Secret)
			ttl := time.Duration(v.TTLSec) * time.Second
			got, err := Decrypt(k, v.Token, ttl, v.Now)
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Decrypt(ttl %v, now %s) = %q, %v, want ErrInvalidToken", ttl, v.Now, got, err)
			}
			// A vector that opens without a TTL fails on time alone, and
			// only those may say ErrExpired.
			_, errNoTTL := Decrypt(k, v.Token, 0, v.Now)
			if wantExpired := errNoTTL == nil; errors.Is(err, ErrExpired) != wantExpired {
				t.Errorf("Decrypt(ttl %v, now %s) error = %v, want ErrExpired: %t", ttl, v.Now, err, wantExpired)
			}
			if _, err := (Keys{k}).Rotate(v.Token); errNoTTL != nil && !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Rotate error = %v, want ErrInvalidToken", err)
			}
		})
	}
}
