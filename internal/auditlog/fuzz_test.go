package auditlog

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// FuzzParseLeaf: ParseLeaf never panics and accepts only canonical
// encodings (decoding then encoding gives the input back).
func FuzzParseLeaf(f *testing.F) {
	e := entry(f, "t1", 1)
	for _, lf := range []Leaf{
		{Position: 7, Tenant: e.Tenant, ID: e.ID, Time: e.Time, Index: e.Index, Data: e.Data},
		{Tenant: "t", ID: "e", Time: time.Unix(1, 0)},
	} {
		b, err := lf.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		lf, err := ParseLeaf(b)
		if err != nil {
			return
		}
		again, err := lf.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("ParseLeaf(%x) = %+v, which encodes as %x, %v", b, lf, again, err)
		}
	})
}

// FuzzParseCheckpoint: parseCheckpoint never panics and accepts only the
// text formatCheckpoint writes.
func FuzzParseCheckpoint(f *testing.F) {
	f.Add(formatCheckpoint("idvault.test/audit/t1", 42, tlog.Hash{1, 2, 3}))
	f.Add("o\n0\n\n")
	f.Fuzz(func(t *testing.T, text string) {
		cp, err := parseCheckpoint(text)
		if err != nil {
			return
		}
		if again := formatCheckpoint(cp.Origin, cp.Size, cp.Root); again != text {
			t.Fatalf("parseCheckpoint(%q) = %+v, which formats as %q", text, cp, again)
		}
	})
}

// FuzzDecodeCursor: decodeCursor never panics, never yields a negative
// position, and accepts only what encodeCursor writes.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(0))
	f.Add(encodeCursor(1 << 40))
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, c string) {
		p, err := decodeCursor(c)
		if err != nil || c == "" {
			return
		}
		if p < 0 || encodeCursor(p) != c {
			t.Fatalf("decodeCursor(%q) = %d, which encodes as %q", c, p, encodeCursor(p))
		}
	})
}

// FuzzSplitBatch: splitBatch never panics and its items re-frame to the
// body when it reports a whole body.
func FuzzSplitBatch(f *testing.F) {
	f.Add(appendLen32(appendLen32(nil, []byte("abc")), nil))
	f.Add([]byte{0, 0, 0, 9, 1})
	f.Fuzz(func(t *testing.T, body []byte) {
		items, ok := splitBatch(body)
		var again []byte
		for _, it := range items {
			again = appendLen32(again, it)
		}
		if ok && !bytes.Equal(again, body) || !ok && !bytes.HasPrefix(body, again) {
			t.Fatalf("splitBatch(%x) = %d items, %v", body, len(items), ok)
		}
	})
}
