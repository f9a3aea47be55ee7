// Package store defines the narrow record backend that every structured-data
// engine implements, and the tenant view that handlers use above it.
//
// A backend stores records of {collection, tenant, id, version, index fields,
// body}. It never sees plaintext: the body is sealed by the barrier before it
// reaches the backend (see View), and index fields are declared, clear values
// that MUST NOT hold personal data (status, timestamps, ids, blind indexes).
//
// Every method takes the tenant as an argument and every query filters on it;
// there is no backend call that reads across tenants. Platform-wide records
// (tenants, leases) live under the reserved tenant PlatformTenant.
//
// Threat model: a thief of the database file or a backup learns collection
// names, ids, versions and index fields, never a body's content; a body moved
// to another record, collection or tenant fails to open (the barrier binds it
// to its place).
package store

import (
	"context"
	"errors"
	"fmt"
)

// PlatformTenant is the reserved tenant id under which platform-wide records
// (the tenant list, scheduler leases) are kept. No real tenant can have it.
const PlatformTenant = "_platform"

// Sentinel errors returned by every Backend. Check them with errors.Is.
var (
	// ErrNotFound means no record exists at the given place.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict means Put found an existing record, or Update/Delete found a
	// version other than the expected one (compare-and-swap failed).
	ErrConflict = errors.New("store: version conflict")
	// ErrInvalid means the call itself is malformed (empty collection, tenant
	// or id, a bad cursor, an unknown operator).
	ErrInvalid = errors.New("store: invalid argument")
)

// Record is one stored record. Body is opaque sealed bytes; Index holds the
// declared clear index fields. Version is assigned by the backend: 1 on Put,
// incremented by every Update.
type Record struct {
	Collection string
	Tenant     string
	ID         string
	Version    int64
	Index      map[string]string
	Body       []byte
}

// Op is a comparison operator on an index field.
type Op string

// Comparison operators. Values compare as strings (byte order), so index
// values that must sort (timestamps, counters) are written fixed-width.
const (
	Eq  Op = "="
	Lt  Op = "<"
	Lte Op = "<="
	Gt  Op = ">"
	Gte Op = ">="
)

// Cond is one condition on an index field. Records without the field never
// match a condition on it.
type Cond struct {
	Field string
	Op    Op
	Value string
}

// Query selects records of one collection of one tenant. All conditions must
// hold. Results are ordered by the index field OrderBy, ties broken by id; an
// empty OrderBy orders by id. Desc reverses the whole order (ties by id
// descending), so a descending query returns exactly the reverse of the
// ascending one. Records lacking the OrderBy field are not returned. Limit
// caps the page size: Limit <= 0 means DefaultLimit, and more than MaxLimit
// means MaxLimit. Cursor continues after the last record of a previous page
// of the same query; a cursor of another query is ErrInvalid.
type Query struct {
	Collection string
	Tenant     string
	Where      []Cond
	OrderBy    string
	Desc       bool
	Limit      int
	Cursor     string
}

// Page is one page of a query. Next is empty on the last page; otherwise it is
// an opaque cursor for Query.Cursor.
type Page struct {
	Records []Record
	Next    string
}

// Page sizes and key limits every backend enforces.
const (
	// DefaultLimit is the page size of a query with Limit <= 0.
	DefaultLimit = 100
	// MaxLimit is the largest page a backend returns; larger limits are
	// capped.
	MaxLimit = 1000
	// MaxKeyLen is the longest collection, tenant or id in bytes; longer
	// ones are ErrInvalid.
	MaxKeyLen = 256
	// MaxFieldLen is the longest index field name. Field names are 1 to
	// MaxFieldLen characters of [A-Za-z0-9_.]; others are ErrInvalid.
	MaxFieldLen = 64
)

// Backend is the narrow storage interface. Implementations MUST be safe for
// concurrent use and MUST make every method atomic: a record is either wholly
// written (body, index and version) or not at all.
type Backend interface {
	// Get returns the record at (collection, tenant, id) or ErrNotFound.
	Get(ctx context.Context, collection, tenant, id string) (Record, error)
	// Put creates a record; it returns ErrConflict if the id exists. The
	// returned record carries Version 1.
	Put(ctx context.Context, rec Record) (Record, error)
	// Update replaces body and index of an existing record if its stored
	// version equals rec.Version, and returns it with the new version.
	// It returns ErrNotFound if absent and ErrConflict on a version mismatch
	// (rec.Version 0 never matches: stored versions start at 1).
	Update(ctx context.Context, rec Record) (Record, error)
	// Delete removes the record if its stored version equals version
	// (version 0 deletes whatever version is stored). It returns ErrNotFound
	// if absent and ErrConflict on a version mismatch.
	Delete(ctx context.Context, collection, tenant, id string, version int64) error
	// Apply performs writes in order as one atomic unit: every write takes
	// effect or none does. It returns the written records in the order of
	// writes, with the versions Put and Update assign (a deleted record is
	// returned as given). The first failing write fails the whole batch with
	// its error (ErrConflict, ErrNotFound, ErrInvalid), wrapped in a
	// *BatchError that names its position. More than MaxBatch writes, or an
	// unknown WriteOp, is ErrInvalid.
	Apply(ctx context.Context, writes []Write) ([]Record, error)
	// Query returns one page of matching records.
	Query(ctx context.Context, q Query) (Page, error)
	// Ping reports whether the backend is reachable.
	Ping(ctx context.Context) error
	// Close releases the backend's resources.
	Close() error
}

// WriteOp is the kind of one write in an atomic batch.
type WriteOp int

// Write operations of a batch, with the semantics of Put, Update and Delete.
const (
	OpPut WriteOp = iota + 1
	OpUpdate
	OpDelete
)

// MaxBatch is the largest number of writes one Apply takes.
const MaxBatch = 1000

// Write is one write of an atomic batch (Backend.Apply). For OpUpdate and
// OpDelete, Record.Version is the expected stored version (OpDelete: 0 means
// any); for OpDelete only the record's collection, tenant and id count.
type Write struct {
	Op     WriteOp
	Record Record
}

// BatchError is the error of Apply: the write at Index failed with Err, and
// nothing of the batch took effect.
type BatchError struct {
	Index int
	Err   error
}

func (e *BatchError) Error() string { return fmt.Sprintf("batch write %d: %v", e.Index, e.Err) }

// Unwrap returns the error of the failed write.
func (e *BatchError) Unwrap() error { return e.Err }

// TimeFormat is the fixed-width UTC layout of timestamps kept in index
// fields, so that byte order is time order.
const TimeFormat = "2006-01-02T15:04:05.000000000Z"
