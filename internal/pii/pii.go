// Package pii types personal data so that it redacts itself wherever it could
// reach an application log: fmt in every verb, slog, errors built with %v or
// %s. Its JSON form keeps the value, because JSON is how records are encoded
// before the barrier seals them; structs that hold personal data therefore
// also implement slog.LogValuer, so that logging a whole record shows only
// its safe fields.
package pii

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// Redacted is what personal data prints as.
const Redacted = "[personal data]"

// String is a personal-data string: a username, an address, a user agent.
type String string

// Value returns the personal data itself, for code that must use it.
func (s String) Value() string { return string(s) }

// String returns Redacted.
func (s String) String() string { return Redacted }

// GoString returns Redacted.
func (s String) GoString() string { return Redacted }

// Format prints Redacted for every verb.
func (s String) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// LogValue returns Redacted.
func (s String) LogValue() slog.Value { return slog.StringValue(Redacted) }

// JSON is a personal-data JSON document, such as a session's metadata.
type JSON json.RawMessage

// Value returns the document itself.
func (j JSON) Value() json.RawMessage { return json.RawMessage(j) }

// String returns Redacted.
func (j JSON) String() string { return Redacted }

// GoString returns Redacted.
func (j JSON) GoString() string { return Redacted }

// Format prints Redacted for every verb.
func (j JSON) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// LogValue returns Redacted.
func (j JSON) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON returns the document (null when empty).
func (j JSON) MarshalJSON() ([]byte, error) {
	if len(j) == 0 {
		return []byte("null"), nil
	}
	return json.RawMessage(j).MarshalJSON()
}

// UnmarshalJSON keeps a copy of data.
func (j *JSON) UnmarshalJSON(data []byte) error {
	*j = append((*j)[:0], data...)
	return nil
}
