package sqlite

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/idvault/idvault/internal/store"
)

func TestCursorRoundTrip(t *testing.T) {
	shape := queryShape(store.Query{Collection: "c", Tenant: "t", OrderBy: "f"})
	tests := []struct {
		name string
		c    cursor
	}{
		{"by id", cursor{id: "r1"}},
		{"with value", cursor{value: "2024-01-01", id: "r1"}},
		{"binary", cursor{value: "\x00\xff", id: "\x00"}},
		{"long id", cursor{value: strings.Repeat("v", 300), id: strings.Repeat("i", store.MaxKeyLen)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := encodeCursor(shape, tt.c)
			got, err := decodeCursor(s, shape)
			if err != nil || got != tt.c {
				t.Errorf("decodeCursor(encodeCursor(%+v)) = %+v, %v; want %+v, nil", tt.c, got, err, tt.c)
			}
		})
	}
}

func TestCursorInvalid(t *testing.T) {
	shape := queryShape(store.Query{Collection: "c", Tenant: "t"})
	other := queryShape(store.Query{Collection: "c", Tenant: "u"})
	good := encodeCursor(shape, cursor{value: "v", id: "i"})
	tests := []struct{ name, s string }{
		{"empty", ""},
		{"padding", good + "="},
		{"std alphabet", "+/+/"},
		{"short", good[:10]},
		{"other shape", encodeCursor(other, cursor{value: "v", id: "i"})},
		{"empty id", encodeCursor(shape, cursor{value: "v"})},
		{"long id", encodeCursor(shape, cursor{id: strings.Repeat("i", store.MaxKeyLen+1)})},
		{"value longer than rest", rawCursor(append([]byte{cursorVersion}, append(shape[:], 50, 'a', 'b')...))},
		{"bad varint", rawCursor(append([]byte{cursorVersion}, append(shape[:], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 'a')...))},
		{"other version", rawCursor(append([]byte{cursorVersion + 1}, append(shape[:], 0, 'i')...))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeCursor(tt.s, shape); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("decodeCursor(%q) = %v, want %v", tt.s, err, store.ErrInvalid)
			}
		})
	}
}

func rawCursor(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestQueryShape(t *testing.T) {
	base := store.Query{Collection: "c", Tenant: "t", OrderBy: "f",
		Where: []store.Cond{{Field: "a", Op: store.Eq, Value: "1"}, {Field: "b", Op: store.Lt, Value: "2"}}}
	same := []struct {
		name string
		q    store.Query
	}{
		{"identical", base},
		{"conditions reordered", store.Query{Collection: "c", Tenant: "t", OrderBy: "f",
			Where: []store.Cond{base.Where[1], base.Where[0]}}},
		{"other limit and cursor", store.Query{Collection: "c", Tenant: "t", OrderBy: "f", Where: base.Where, Limit: 7, Cursor: "x"}},
	}
	for _, tt := range same {
		if queryShape(tt.q) != queryShape(base) {
			t.Errorf("queryShape(%s) differs from the base query's, want equal", tt.name)
		}
	}
	differ := []struct {
		name string
		q    store.Query
	}{
		{"collection and tenant shifted", store.Query{Collection: "ct", Tenant: "", OrderBy: "f", Where: base.Where}},
		{"desc", store.Query{Collection: "c", Tenant: "t", OrderBy: "f", Where: base.Where, Desc: true}},
		{"no order", store.Query{Collection: "c", Tenant: "t", Where: base.Where}},
		{"value moved between fields", store.Query{Collection: "c", Tenant: "t", OrderBy: "f",
			Where: []store.Cond{{Field: "a1", Op: store.Eq, Value: ""}, base.Where[1]}}},
	}
	for _, tt := range differ {
		if queryShape(tt.q) == queryShape(base) {
			t.Errorf("queryShape(%s) equals the base query's, want different", tt.name)
		}
	}
}

func FuzzDecodeCursor(f *testing.F) {
	shape := queryShape(store.Query{Collection: "c", Tenant: "t", OrderBy: "f"})
	f.Add(encodeCursor(shape, cursor{value: "2024", id: "r1"}))
	f.Add(encodeCursor(shape, cursor{id: "x"}))
	f.Add("")
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeCursor(s, shape)
		if err != nil {
			if !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("decodeCursor(%q) = %v, want nil or %v", s, err, store.ErrInvalid)
			}
			return
		}
		got, err := decodeCursor(encodeCursor(shape, c), shape)
		if err != nil || got != c {
			t.Fatalf("decodeCursor(encodeCursor(%+v)) = %+v, %v; want %+v, nil", c, got, err, c)
		}
	})
}
