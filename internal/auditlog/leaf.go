package auditlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
	"unicode"
)

// Names of the filter values an Entry may carry in its Index. No other name
// is accepted.
const (
	IndexAction       = "action"
	IndexOutcome      = "outcome"
	IndexActorType    = "actorType"
	IndexActorID      = "actorId"
	IndexResourceType = "resourceType"
	IndexResourceID   = "resourceId"
)

var indexNames = map[string]bool{
	IndexAction: true, IndexOutcome: true, IndexActorType: true,
	IndexActorID: true, IndexResourceType: true, IndexResourceID: true,
}

// Limits on the parts of a leaf.
const (
	// MaxIDLen is the longest tenant or event id in bytes.
	MaxIDLen = 256
	// MaxIndexValueLen is the longest Index value in bytes.
	MaxIndexValueLen = 256
	// MaxDataLen is the largest event (Entry.Data) in bytes.
	MaxDataLen = 1 << 20
)

// leafVersion is the first byte of every leaf.
const leafVersion = 0x01

// Leaf is one record of a tenant's log as it is hashed into the tree: the
// event's position, tenant, id, time, filter values and canonical bytes.
// Its encoding (MarshalBinary) is the "leaf data" of inclusion proofs.
type Leaf struct {
	Position int64
	Tenant   string
	ID       string
	Time     time.Time
	Index    map[string]string
	Data     []byte
}

var errMalformedLeaf = errors.New("auditlog: malformed leaf")

// MarshalBinary returns the leaf encoding (all integers big-endian):
//
//	0x01 | position uint64 | time int64 (Unix nanoseconds) |
//	len32 tenant | len32 id | count32 | count × (len32 name | len32 value) | len32 data
//
// where len32 x is x's length as a uint32 followed by its bytes, and the
// index names are distinct and in ascending byte order. It fails if a part is
// out of its limits.
func (lf Leaf) MarshalBinary() ([]byte, error) {
	if err := lf.check(); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(lf.Index))
	size := 1 + 8 + 8 + 4 + len(lf.Tenant) + 4 + len(lf.ID) + 4 + 4 + len(lf.Data)
	for name, value := range lf.Index {
		names = append(names, name)
		size += 8 + len(name) + len(value)
	}
	sort.Strings(names)
	b := make([]byte, 0, size)
	b = append(b, leafVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(lf.Position))
	b = binary.BigEndian.AppendUint64(b, uint64(lf.Time.UnixNano()))
	b = appendLen32(b, []byte(lf.Tenant))
	b = appendLen32(b, []byte(lf.ID))
	b = binary.BigEndian.AppendUint32(b, uint32(len(names)))
	for _, name := range names {
		b = appendLen32(b, []byte(name))
		b = appendLen32(b, []byte(lf.Index[name]))
	}
	return appendLen32(b, lf.Data), nil
}

// check reports whether every part of the leaf is within its limits.
func (lf Leaf) check() error {
	if lf.Position < 0 {
		return fmt.Errorf("auditlog: negative position %d", lf.Position)
	}
	if err := checkTenant(lf.Tenant); err != nil {
		return err
	}
	if lf.ID == "" || len(lf.ID) > MaxIDLen {
		return fmt.Errorf("auditlog: event id length %d not in 1..%d", len(lf.ID), MaxIDLen)
	}
	if err := checkTime(lf.Time); err != nil {
		return err
	}
	for name, value := range lf.Index {
		if !indexNames[name] {
			return fmt.Errorf("auditlog: unknown index name %q", name)
		}
		if value == "" || len(value) > MaxIndexValueLen {
			return fmt.Errorf("auditlog: index %s: value length %d not in 1..%d", name, len(value), MaxIndexValueLen)
		}
	}
	if len(lf.Data) > MaxDataLen {
		return fmt.Errorf("auditlog: event of %d bytes, more than %d", len(lf.Data), MaxDataLen)
	}
	return nil
}

// checkTenant reports whether tenant can name a log: 1 to MaxIDLen bytes,
// no slash (it ends the checkpoint origin), no space or control character
// (the origin is one line of the signed note).
func checkTenant(tenant string) error {
	if tenant == "" || len(tenant) > MaxIDLen {
		return fmt.Errorf("auditlog: tenant length %d not in 1..%d", len(tenant), MaxIDLen)
	}
	if strings.ContainsFunc(tenant, func(r rune) bool { return r == '/' || unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return fmt.Errorf("auditlog: tenant %q holds a slash, space or control character", tenant)
	}
	return nil
}

// checkTime reports whether t is set and representable in Unix nanoseconds.
func checkTime(t time.Time) error {
	if t.IsZero() {
		return errors.New("auditlog: event time is not set")
	}
	if t.Before(time.Unix(0, math.MinInt64)) || t.After(time.Unix(0, math.MaxInt64)) {
		return fmt.Errorf("auditlog: event time %s out of range", t)
	}
	return nil
}

func appendLen32(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// ParseLeaf decodes a leaf encoded by MarshalBinary. It accepts exactly the
// encodings MarshalBinary produces: any other byte string, including one with
// trailing bytes or unsorted index names, is an error.
func ParseLeaf(b []byte) (Leaf, error) {
	d := decoder{b: b}
	if d.byte() != leafVersion {
		return Leaf{}, fmt.Errorf("%w: unknown version", errMalformedLeaf)
	}
	lf := Leaf{
		Position: int64(d.uint64()),
		Time:     time.Unix(0, int64(d.uint64())).UTC(),
		Tenant:   string(d.len32(MaxIDLen)),
		ID:       string(d.len32(MaxIDLen)),
	}
	n := d.uint32()
	if n > uint32(len(indexNames)) {
		return Leaf{}, fmt.Errorf("%w: %d index values", errMalformedLeaf, n)
	}
	if n > 0 {
		lf.Index = make(map[string]string, n)
	}
	prev := ""
	for i := uint32(0); i < n && d.err == nil; i++ {
		name := string(d.len32(64))
		if i > 0 && name <= prev {
			return Leaf{}, fmt.Errorf("%w: index names not ascending", errMalformedLeaf)
		}
		lf.Index[name], prev = string(d.len32(MaxIndexValueLen)), name
	}
	lf.Data = d.len32(MaxDataLen)
	if d.err != nil {
		return Leaf{}, d.err
	}
	if len(d.b) != 0 {
		return Leaf{}, fmt.Errorf("%w: %d trailing bytes", errMalformedLeaf, len(d.b))
	}
	if err := lf.check(); err != nil {
		return Leaf{}, fmt.Errorf("%w: %w", errMalformedLeaf, err)
	}
	return lf, nil
}

// decoder reads big-endian fields; after the first short read every read
// returns zero values and err is set.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b) < n {
		d.err = fmt.Errorf("%w: truncated", errMalformedLeaf)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) uint32() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) uint64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// len32 reads a length-prefixed byte string of at most limit bytes.
func (d *decoder) len32(limit int) []byte {
	n := d.uint32()
	if d.err == nil && int64(n) > int64(limit) {
		d.err = fmt.Errorf("%w: field of %d bytes, more than %d", errMalformedLeaf, n, limit)
	}
	return d.take(int(n))
}
