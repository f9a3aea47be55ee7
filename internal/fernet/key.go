package fernet

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// KeySize is the length in bytes of a decoded Fernet key.
const KeySize = 32

// ErrInvalidKey reports a key string that is not 32 bytes of base64, or the
// use of a zero Key.
var ErrInvalidKey = errors.New("fernet: invalid key")

// redacted is what every rendering of a Key shows instead of its bytes.
const redacted = "REDACTED"

// Key is a Fernet key: a 16-byte HMAC-SHA256 signing key and a 16-byte
// AES-128 encryption key. The zero Key holds no key; Encrypt and Decrypt
// reject it with ErrInvalidKey.
//
// A Key never prints its bytes: fmt (every verb), log/slog, encoding/json,
// encoding.TextMarshaler and gopkg.in/yaml.v3 all render it as "REDACTED",
// and the bytes sit behind a pointer, so a Key in an unexported struct field
// prints as an address. Only Encode reveals it. A Key is immutable and safe
// for concurrent use.
type Key struct {
	d *keyData
}

type keyData struct {
	raw     [KeySize]byte
	signing []byte
	block   cipher.Block
}

// newKey builds a Key from 32 raw bytes, which it copies.
func newKey(raw []byte) (Key, error) {
	d := &keyData{}
	copy(d.raw[:], raw)
	d.signing = d.raw[:16]
	block, err := aes.NewCipher(d.raw[16:])
	if err != nil {
		return Key{}, fmt.Errorf("fernet: encryption key: %w", err)
	}
	d.block = block
	return Key{d: d}, nil
}

// ParseKey decodes a Fernet key: 32 bytes in base64url with padding
// (44 characters), as Python's Fernet.generate_key writes it. It also accepts
// the standard base64 alphabet ('+' and '/'), as the Python reference does,
// and a key without its trailing '='. The error never contains the key.
func ParseKey(s string) (Key, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case '+':
			return '-'
		case '/':
			return '_'
		}
		return r
	}, s)
	enc := base64.URLEncoding.Strict()
	if !strings.HasSuffix(s, "=") {
		enc = base64.RawURLEncoding.Strict()
	}
	if len(s) != enc.EncodedLen(KeySize) || strings.ContainsAny(s, "\r\n") {
		return Key{}, fmt.Errorf("%w: want %d bytes in base64url (%d characters), got %d characters",
			ErrInvalidKey, KeySize, base64.URLEncoding.EncodedLen(KeySize), len(s))
	}
	raw := make([]byte, KeySize)
	if _, err := enc.Decode(raw, []byte(s)); err != nil {
		return Key{}, fmt.Errorf("%w: not base64url", ErrInvalidKey)
	}
	return newKey(raw)
}

// GenerateKey returns a new random Key from crypto/rand.
func GenerateKey() (Key, error) {
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return Key{}, fmt.Errorf("fernet: generate key: %w", err)
	}
	return newKey(raw)
}

// Encode returns the key in base64url with padding, the form ParseKey reads
// and the Fernet implementations of other languages expect. The result is
// the secret itself: the caller MUST NOT log or print it. Encode of the zero
// Key returns "".
func (k Key) Encode() string {
	if k.d == nil {
		return ""
	}
	return base64.URLEncoding.EncodeToString(k.d.raw[:])
}

// IsZero reports whether k holds no key.
func (k Key) IsZero() bool { return k.d == nil }

// Equal reports whether k and other hold the same key. It takes the same
// time whatever the bytes are.
func (k Key) Equal(other Key) bool {
	if k.d == nil || other.d == nil {
		return k.d == other.d
	}
	return subtle.ConstantTimeCompare(k.d.raw[:], other.d.raw[:]) == 1
}

// String returns "REDACTED".
func (k Key) String() string { return redacted }

// GoString returns "REDACTED", so %#v does not show the key either.
func (k Key) GoString() string { return redacted }

// Format writes "REDACTED" for every verb and flag.
func (k Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue returns "REDACTED" as a slog string value.
func (k Key) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON returns the JSON string "REDACTED".
func (k Key) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "REDACTED".
func (k Key) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// MarshalYAML returns "REDACTED" for gopkg.in/yaml.v3.
func (k Key) MarshalYAML() (any, error) { return redacted, nil }
