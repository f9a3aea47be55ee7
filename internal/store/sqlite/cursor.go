package sqlite

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"

	"github.com/idvault/idvault/internal/store"
)

const (
	// cursorVersion is the first byte of every cursor; a cursor of another
	// format version is rejected.
	cursorVersion = 1
	// shapeLen is the length of the query-shape digest carried in a cursor.
	shapeLen = 16
)

// cursor is the position after the last record of a page: the OrderBy value
// of that record (empty when ordering by id) and its id.
type cursor struct {
	value string
	id    string
}

// queryShape returns the digest that binds a cursor to the query it came
// from: collection, tenant, OrderBy, direction and the conditions (in a
// canonical order). Limit is not part of it, so a caller may change the page
// size between pages.
func queryShape(q store.Query) [shapeLen]byte {
	conds := slices.Clone(q.Where)
	slices.SortFunc(conds, func(a, b store.Cond) int {
		return cmp.Or(cmp.Compare(a.Field, b.Field), cmp.Compare(a.Op, b.Op), cmp.Compare(a.Value, b.Value))
	})
	var buf []byte
	put := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	put("idvault store cursor v1")
	put(q.Collection)
	put(q.Tenant)
	put(q.OrderBy)
	put(strconv.FormatBool(q.Desc))
	for _, c := range conds {
		put(c.Field)
		put(string(c.Op))
		put(c.Value)
	}
	sum := sha256.Sum256(buf)
	var out [shapeLen]byte
	copy(out[:], sum[:])
	return out
}

// encodeCursor returns the opaque cursor for position c of a query of shape
// shape.
func encodeCursor(shape [shapeLen]byte, c cursor) string {
	buf := make([]byte, 0, 1+shapeLen+binary.MaxVarintLen64+len(c.value)+len(c.id))
	buf = append(buf, cursorVersion)
	buf = append(buf, shape[:]...)
	buf = binary.AppendUvarint(buf, uint64(len(c.value)))
	buf = append(buf, c.value...)
	buf = append(buf, c.id...)
	return base64.RawURLEncoding.EncodeToString(buf)
}

// decodeCursor parses s and checks that it belongs to a query of shape
// shape. Every failure wraps store.ErrInvalid.
func decodeCursor(s string, shape [shapeLen]byte) (cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, fmt.Errorf("decode cursor: %w", store.ErrInvalid)
	}
	if len(raw) < 1+shapeLen || raw[0] != cursorVersion {
		return cursor{}, fmt.Errorf("decode cursor: bad header: %w", store.ErrInvalid)
	}
	if !bytes.Equal(raw[1:1+shapeLen], shape[:]) {
		return cursor{}, fmt.Errorf("decode cursor: cursor of another query: %w", store.ErrInvalid)
	}
	rest := raw[1+shapeLen:]
	n, size := binary.Uvarint(rest)
	if size <= 0 || n > uint64(len(rest)-size) {
		return cursor{}, fmt.Errorf("decode cursor: bad value length: %w", store.ErrInvalid)
	}
	rest = rest[size:]
	c := cursor{value: string(rest[:n]), id: string(rest[n:])}
	if err := checkID(c.id); err != nil {
		return cursor{}, fmt.Errorf("decode cursor: %w", err)
	}
	return c, nil
}
