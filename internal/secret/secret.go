// Package secret holds secret bytes in a type that never prints them, and
// resolves the references by which configuration names a secret.
//
// # Threat model
//
// The threat is accidental disclosure: a secret that reaches a log line, an
// error message, a debug dump, a JSON API response or a YAML config printout.
// A Value therefore renders as "REDACTED" through every encoder the code base
// uses: fmt (all verbs, %#v included), log/slog (LogValue), encoding/json,
// encoding.TextMarshaler and gopkg.in/yaml.v3. The bytes sit behind a pointer,
// so even a Value held in an unexported struct field, which fmt walks by
// reflection without calling methods, prints as an address and not as bytes.
// Equal compares in constant time, so comparing a presented secret with the
// stored one does not leak how many leading bytes matched.
//
// Out of scope: an attacker who can read process memory, core dumps or swap;
// code that calls Bytes and then prints the result; reflection with unsafe.
// Go's garbage collector may keep copies of the bytes; Value does not try to
// wipe memory.
//
// # References
//
// Configuration never holds a secret directly in production; it holds a
// reference that Resolve turns into a Value at start-up:
//
//	env:NAME    the value of environment variable NAME; an unset or empty
//	            variable is an error. NAME matches [A-Za-z_][A-Za-z0-9_]*.
//	file:/path  the contents of the file at the absolute path /path, with one
//	            trailing "\n" (or "\r\n") removed. The file MUST be a regular
//	            file of at most MaxFileBytes bytes that grants no permission
//	            to others (mode & 0o007 == 0; 0600 or 0440 are typical). On
//	            Kubernetes, mount secrets with defaultMode 0440 (or 0400).
//
// The schemes vault and openbao are reserved for later builds; a reference
// using them fails with a "not supported by this build" error rather than
// being read as a literal. Scheme names match case-insensitively.
//
// Anything else (no colon, or a prefix that is not one of the schemes above)
// is a literal: the reference is the secret itself. IsLiteral reports this so
// that production configuration can refuse literals. An empty reference names
// no secret; Resolve rejects it.
package secret

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
)

// redacted is what every rendering of a secret shows instead of its bytes.
const redacted = "REDACTED"

// Value holds secret bytes. The zero Value holds no bytes.
//
// A Value is immutable and safe for concurrent use. Copies of a Value share
// the same underlying bytes, which no method ever modifies.
type Value struct {
	d *data
}

// data keeps the bytes behind a pointer so that fmt, walking a struct that
// holds a Value in an unexported field, prints an address, not the bytes.
type data struct {
	b []byte
}

// New returns a Value holding a copy of b. The caller may reuse b afterwards.
func New(b []byte) Value {
	if len(b) == 0 {
		return Value{}
	}
	return Value{d: &data{b: append([]byte(nil), b...)}}
}

// Bytes returns a copy of the secret bytes, or nil for the zero Value. The
// caller owns the copy and MUST NOT log or print it.
func (v Value) Bytes() []byte {
	if v.d == nil {
		return nil
	}
	return append([]byte(nil), v.d.b...)
}

// IsZero reports whether v holds no bytes.
func (v Value) IsZero() bool { return v.d == nil || len(v.d.b) == 0 }

// Equal reports whether v and other hold the same bytes. The time it takes
// depends on the lengths of the two values but not on their contents.
func (v Value) Equal(other Value) bool {
	return subtle.ConstantTimeCompare(v.raw(), other.raw()) == 1
}

func (v Value) raw() []byte {
	if v.d == nil {
		return nil
	}
	return v.d.b
}

// String returns "REDACTED".
func (v Value) String() string { return redacted }

// GoString returns "REDACTED", so %#v does not show the bytes either.
func (v Value) GoString() string { return redacted }

// Format writes "REDACTED" for every verb and flag.
func (v Value) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue returns "REDACTED" as a slog string value.
func (v Value) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON returns the JSON string "REDACTED".
func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "REDACTED".
func (v Value) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// MarshalYAML returns "REDACTED" for gopkg.in/yaml.v3.
func (v Value) MarshalYAML() (any, error) { return redacted, nil }
