package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Entry is one audit event to forward: the tenant, its position in the
// tenant's log, and the event's canonical JSON. Time, Action and Outcome
// repeat fields of the event for headers (syslog timestamp, MSGID and
// severity); Data is the event itself and is what a consumer should trust.
type Entry struct {
	Tenant  string
	Index   int64
	Time    time.Time
	Action  string
	Outcome string
	Data    []byte
}

// Sink is a destination for audit entries.
type Sink interface {
	// Name names the kind of sink ("file", "syslog") for logs and cursors.
	Name() string
	// Write delivers entries in order. It returns nil only when all of them
	// were handed to the destination; on an error the caller retries the same
	// entries later, so a destination may see an entry more than once.
	// Write MUST be safe for concurrent use; calls are serialized.
	Write(ctx context.Context, entries []Entry) error
	// Close releases the sink. Write after Close returns ErrClosed.
	Close() error
}

// ErrClosed is returned by Write on a closed sink.
var ErrClosed = errors.New("sink: closed")

// ErrInvalidEntry reports an entry that no sink can write: an empty tenant, a
// negative index, or Data that is not valid UTF-8 JSON. Retrying it cannot
// succeed; the caller skips it (the event stays in the audit log) and
// reports it. Errors that wrap it are *EntryError values.
var ErrInvalidEntry = errors.New("sink: invalid entry")

// EntryError names the entry Write refused. When Write returns one, it wrote
// none of the batch.
type EntryError struct {
	Tenant string
	Index  int64
	Reason string
}

// Error implements error. It names the tenant id and index, never event data.
func (e *EntryError) Error() string {
	return fmt.Sprintf("sink: invalid entry (tenant %q, index %d): %s", e.Tenant, e.Index, e.Reason)
}

// Unwrap returns ErrInvalidEntry.
func (e *EntryError) Unwrap() error { return ErrInvalidEntry }

// appendEvent checks e and appends its Data to dst with insignificant white
// space removed.
func appendEvent(dst []byte, e *Entry) ([]byte, error) {
	switch {
	case e.Tenant == "":
		return dst, &EntryError{Tenant: e.Tenant, Index: e.Index, Reason: "empty tenant"}
	case e.Index < 0:
		return dst, &EntryError{Tenant: e.Tenant, Index: e.Index, Reason: "negative index"}
	case !utf8.Valid(e.Data):
		return dst, &EntryError{Tenant: e.Tenant, Index: e.Index, Reason: "event is not valid UTF-8"}
	}
	buf := bytes.NewBuffer(dst)
	if err := json.Compact(buf, e.Data); err != nil {
		return dst, &EntryError{Tenant: e.Tenant, Index: e.Index, Reason: "event is not valid JSON"}
	}
	return buf.Bytes(), nil
}
