package fernet

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// specKey is the key of the Fernet spec's test vectors; it holds '-' and
// '_', so its standard-alphabet spelling differs.
const specKey = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="

func TestParseKey(t *testing.T) {
	std := strings.NewReplacer("-", "+", "_", "/").Replace(specKey)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"base64url", specKey, true},
		{"standard alphabet", std, true},
		{"no padding", strings.TrimSuffix(specKey, "="), true},
		{"standard alphabet, no padding", strings.TrimSuffix(std, "="), true},
		{"empty", "", false},
		{"16 bytes", "AAAAAAAAAAAAAAAAAAAAAA==", false},
		{"33 bytes", specKey[:43] + "AAA=", false},
		{"extra padding", specKey + "=", false},
		{"bad character", "!" + specKey[1:], false},
		{"non-zero trailing bits", specKey[:42] + "5=", false},
		{"newline inside", specKey[:20] + "\n" + specKey[20:43], false},
		{"trailing newline", specKey + "\n", false},
		{"surrounding space", " " + specKey, false},
	}
	want := mustParseKey(t, specKey)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseKey(tc.in)
			if !tc.ok {
				if !errors.Is(err, ErrInvalidKey) {
					t.Errorf("ParseKey(%q) error = %v, want ErrInvalidKey", tc.in, err)
				}
				if err != nil && strings.Contains(err.Error(), tc.in[:min(len(tc.in), 8)]) && tc.in != "" {
					t.Errorf("ParseKey(%q) error %q repeats the key", tc.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKey(%q) error = %v", tc.in, err)
			}
			if !k.Equal(want) {
				t.Errorf("ParseKey(%q) differs from ParseKey(%q)", tc.in, specKey)
			}
			if got := k.Encode(); got != specKey {
				t.Errorf("ParseKey(%q).Encode() = %q, want %q", tc.in, got, specKey)
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	a, b := newTestKey(t), newTestKey(t)
	if a.Equal(b) {
		t.Error("two generated keys are equal")
	}
	if len(a.Encode()) != 44 {
		t.Errorf("len(Encode()) = %d, want 44", len(a.Encode()))
	}
	back, err := ParseKey(a.Encode())
	if err != nil || !back.Equal(a) {
		t.Errorf("ParseKey(Encode()) = %v, equal %t, want the same key", err, back.Equal(a))
	}
	if a.IsZero() || !(Key{}).IsZero() {
		t.Errorf("IsZero = %t for a key, %t for Key{}, want false, true", a.IsZero(), (Key{}).IsZero())
	}
	if !(Key{}).Equal(Key{}) || a.Equal(Key{}) || (Key{}).Equal(a) {
		t.Error("Equal with the zero Key is wrong")
	}
	if got := (Key{}).Encode(); got != "" {
		t.Errorf("Key{}.Encode() = %q, want empty", got)
	}
}

func TestKeyRedaction(t *testing.T) {
	k := mustParseKey(t, specKey)
	raw, err := tokenEncoding.DecodeString(specKey)
	if err != nil {
		t.Fatal(err)
	}
	leaks := []string{specKey, specKey[:20], hex.EncodeToString(raw[:8]), hex.EncodeToString(raw[16:24]), fmt.Sprint(raw[:4])}
	check := func(t *testing.T, what, out string) {
		t.Helper()
		for _, l := range leaks {
			if strings.Contains(out, l) {
				t.Errorf("%s = %q, leaks %q", what, out, l)
			}
		}
	}

	type exported struct{ K Key }
	type hidden struct{ k Key }
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		t.Run("fmt "+verb, func(t *testing.T) {
			out := fmt.Sprintf(verb, k)
			if verb != "%T" && out != "REDACTED" {
				t.Errorf("Sprintf(%q, key) = %q, want REDACTED", verb, out)
			}
			check(t, "Sprintf "+verb, out)
			check(t, "Sprintf "+verb+" in struct", fmt.Sprintf(verb, exported{k}))
			check(t, "Sprintf "+verb+" in unexported field", fmt.Sprintf(verb, hidden{k}))
			check(t, "Sprintf "+verb+" of pointer", fmt.Sprintf(verb, &exported{k}))
		})
	}
	t.Run("slog", func(t *testing.T) {
		var buf bytes.Buffer
		for _, h := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
			slog.New(h).Info("key", "key", k, "group", exported{k}, "ptr", &k)
		}
		if !strings.Contains(buf.String(), "REDACTED") {
			t.Errorf("log = %s, want REDACTED", buf.String())
		}
		check(t, "slog output", buf.String())
	})
	t.Run("json", func(t *testing.T) {
		out, err := json.Marshal(map[string]any{"k": k, "s": exported{k}, "p": &k})
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"k":"REDACTED","p":"REDACTED","s":{"K":"REDACTED"}}`; string(out) != want {
			t.Errorf("json.Marshal = %s, want %s", out, want)
		}
	})
	t.Run("methods", func(t *testing.T) {
		if k.String() != "REDACTED" || k.GoString() != "REDACTED" {
			t.Errorf("String, GoString = %q, %q, want REDACTED", k.String(), k.GoString())
		}
	})
	t.Run("text and yaml", func(t *testing.T) {
		text, err := k.MarshalText()
		if err != nil || string(text) != "REDACTED" {
			t.Errorf("MarshalText = %q, %v, want REDACTED", text, err)
		}
		y, err := k.MarshalYAML()
		if err != nil || y != "REDACTED" {
			t.Errorf("MarshalYAML = %v, %v, want REDACTED", y, err)
		}
	})
	t.Run("errors", func(t *testing.T) {
		_, err := ParseKey(specKey[:43] + "AAA=")
		check(t, "ParseKey error", err.Error())
	})
}

// FuzzParseKey checks that ParseKey never panics and that every key it
// accepts encodes to the canonical form of the same 32 bytes.
func FuzzParseKey(f *testing.F) {
	f.Add(specKey)
	f.Add(strings.TrimSuffix(specKey, "="))
	f.Add(strings.NewReplacer("-", "+", "_", "/").Replace(specKey))
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("ParseKey(%q) error = %v, want ErrInvalidKey", s, err)
			}
			return
		}
		enc := k.Encode()
		if len(enc) != 44 {
			t.Fatalf("ParseKey(%q).Encode() = %q, want 44 characters", s, enc)
		}
		canon := strings.NewReplacer("+", "-", "/", "_").Replace(s)
		if strings.TrimSuffix(enc, "=") != strings.TrimSuffix(canon, "=") {
			t.Fatalf("ParseKey(%q).Encode() = %q, want the same key", s, enc)
		}
		back, err := ParseKey(enc)
		if err != nil || !back.Equal(k) {
			t.Fatalf("ParseKey(%q) = %v, equal %t, want the same key", enc, err, back.Equal(k))
		}
	})
}
